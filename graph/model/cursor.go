package model

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/auditlog/auditlog/domain"
)

const liveCursorPrefix = "live:"

// LiveCursor makes the stream position seq opaque for clients, who pass it
// back as auditEventRecorded's after to resume.
func LiveCursor(seq uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(liveCursorPrefix + strconv.FormatUint(seq, 10)))
}

// ParseLiveCursor returns the stream position of a cursor made by LiveCursor.
func ParseLiveCursor(s string) (uint64, error) {
	bad := domain.BadInput("after", "is not a liveCursor this API issued")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, bad
	}
	n, ok := strings.CutPrefix(string(raw), liveCursorPrefix)
	if !ok {
		return 0, bad
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	if err != nil {
		return 0, bad
	}
	return seq, nil
}
