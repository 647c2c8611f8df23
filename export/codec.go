package export

import (
	"encoding/csv"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/export/ndjson"
)

// encoder writes events to a file in one format.
type encoder interface {
	Encode(e *domain.Event) error
	// Flush writes out anything buffered and reports a write error.
	Flush() error
}

func newEncoder(format domain.ExportFormat, w io.Writer) (encoder, error) {
	if format == domain.ExportNDJSON {
		return ndjson.NewEncoder(w), nil
	}
	c := &csvEncoder{w: csv.NewWriter(w), row: make([]string, len(CSVHeader))}
	return c, c.w.Write(CSVHeader)
}

// CSVHeader is the first row of a CSV export.
var CSVHeader = []string{
	"Time", "Event type", "Description", "Category", "Source",
	"Actor name", "Actor email", "Actor ID", "Target", "IP address", "Details", "Event ID",
}

// csvEncoder writes RFC 4180 rows, one event each, in CSVHeader's order.
type csvEncoder struct {
	w   *csv.Writer
	row []string
}

func (c *csvEncoder) Encode(e *domain.Event) error {
	details := string(e.Details)
	if details == "" {
		details = "{}"
	}
	r := c.row
	r[0] = e.OccurredAt.UTC().Format(time.RFC3339Nano)
	r[1] = string(e.Type)
	r[2] = e.Description()
	r[3] = string(e.Category())
	r[4] = string(e.Source)
	r[5] = Defuse(e.Actor.Name)
	r[6] = Defuse(e.Actor.Email)
	r[7] = Defuse(e.Actor.ID)
	r[8] = Defuse(targetText(e.Target))
	r[9] = Defuse(e.IPAddress)
	r[10] = Defuse(details)
	r[11] = Defuse(e.ID)
	return c.w.Write(r)
}

func (c *csvEncoder) Flush() error {
	c.w.Flush()
	return c.w.Error()
}

// targetText shows a target as KIND:id (name).
func targetText(t *domain.Target) string {
	if t == nil {
		return ""
	}
	s := t.Kind + ":" + t.ID
	if t.Name != "" {
		s += " (" + t.Name + ")"
	}
	return s
}

// Defuse keeps a spreadsheet from reading a cell as a formula: a cell whose
// first character other than white space is =, +, -, @ (or their full-width
// forms, which some spreadsheets fold to them), or that starts with a tab
// or a carriage return, gets a leading apostrophe, which spreadsheets show
// as text and do not evaluate (OWASP's advice for CSV injection). Only
// recorded, client-supplied text needs it.
func Defuse(s string) string {
	if s != "" && (s[0] == '\t' || s[0] == '\r' || isFormulaStart(strings.TrimLeftFunc(s, unicode.IsSpace))) {
		return "'" + s
	}
	return s
}

func isFormulaStart(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	switch r {
	case '=', '+', '-', '@', '＝', '＋', '－', '＠', '﹦', '﹢', '﹣', '﹫':
		return true
	}
	return false
}
