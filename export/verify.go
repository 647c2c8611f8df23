package export

import (
	"io"

	"github.com/auditlog/auditlog/export/ndjson"
)

// The offline check of an NDJSON export lives in package ndjson; these
// names stay here for the callers that know it as part of export.

// VerifyNDJSON is ndjson.Verify.
func VerifyNDJSON(r io.Reader, verifierKey string) (*Verified, error) {
	return ndjson.Verify(r, verifierKey)
}

// LineError names the first line of an export that does not verify
// (ndjson.LineError).
type LineError = ndjson.LineError

// Verified is what VerifyNDJSON found (ndjson.Verified).
type Verified = ndjson.Verified

// What an export holds of its organization's log (ndjson's constants).
const (
	Complete            = ndjson.Complete
	PartialFiltered     = ndjson.PartialFiltered
	PartialUnfiltered   = ndjson.PartialUnfiltered
	CompletenessUnknown = ndjson.CompletenessUnknown
)
