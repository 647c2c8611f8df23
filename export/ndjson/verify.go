package ndjson

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/treelog"
)

// LineError names the line of an export at which it stops verifying: the
// bad line, or for what only the whole file shows (its root, its manifest)
// the manifest's line.
type LineError struct {
	Line   int
	Reason string
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

func bad(line int, format string, args ...any) error {
	return &LineError{Line: line, Reason: fmt.Sprintf(format, args...)}
}

// Verified is what Verify checked.
type Verified struct {
	Checkpoint treelog.Checkpoint
	// Manifest is the manifest's version: 3 for the files written now, 1
	// or 2 for older ones.
	Manifest int
	Events   int64
	// Filter is the signed filter that chose the events (nil for a version
	// 1 manifest, which records none); its From and To are the time range.
	Filter *domain.Filter
	// FirstLeaf and LastLeaf are the first and last event's leaf, -1 when
	// the export has no events.
	FirstLeaf, LastLeaf int64
	// Completeness is Complete, PartialFiltered, PartialUnfiltered or
	// CompletenessUnknown.
	Completeness string
}

// String is the report of `auditd verify`: what was checked, the signed
// filter and time range, the leaves, and whether the file is the whole log.
func (v *Verified) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d events, each in %s at tree size %d (root %s); signatures and manifest v%d verify\n",
		v.Events, v.Checkpoint.Origin, v.Checkpoint.Size, v.Checkpoint.Hash, v.Manifest)
	if v.Filter != nil {
		f, _ := json.Marshal(v.Filter)
		fmt.Fprintf(&b, "filter: %s\ntime range: %s to %s\n", f, timeOrOpen(v.Filter.From), timeOrOpen(v.Filter.To))
	}
	if v.FirstLeaf >= 0 {
		fmt.Fprintf(&b, "leaves: %d to %d\n", v.FirstLeaf, v.LastLeaf)
	}
	fmt.Fprintf(&b, "export: %s\n", v.Completeness)
	return b.String()
}

func timeOrOpen(t *time.Time) string {
	if t == nil {
		return "(open)"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// What an export holds of its organization's log, as Verify finds.
const (
	// Complete: no filter, and every leaf of the checkpoint's tree.
	Complete = "complete"
	// PartialFiltered: the events a filter chose.
	PartialFiltered = "partial (filtered)"
	// PartialUnfiltered: no filter, but not every leaf (some events were
	// removed, e.g. by retention).
	PartialUnfiltered = "partial (unfiltered, leaves missing)"
	// CompletenessUnknown: a version 1 manifest, which records no filter.
	CompletenessUnknown = "unknown (a v1 manifest records no filter)"
)

func (v *Verified) judge(distinct bool) {
	switch {
	case v.Filter == nil:
		v.Completeness = CompletenessUnknown
	case !isZeroFilter(*v.Filter):
		v.Completeness = PartialFiltered
	case distinct && v.Events == v.Checkpoint.Size:
		v.Completeness = Complete
	default:
		v.Completeness = PartialUnfiltered
	}
}

// Verify checks an NDJSON export offline with the log's verifier key: the
// checkpoint's signature; every line against the event it stands for, and
// against the export's filter; every event against the checkpoint's tree
// (one range proof for the whole file, or with version 1 and 2 manifests an
// inclusion proof per line); and the signed manifest against the lines, so
// a changed byte, or a line dropped, added, repeated or moved is found. It
// returns a *LineError naming the line where the file stops verifying.
func Verify(r io.Reader, verifierKey string) (*Verified, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, bad(1, "%v", err)
		}
		return nil, bad(1, "the file is empty")
	}
	var head exportHeader
	if err := json.Unmarshal(sc.Bytes(), &head); err != nil || (head.AuditlogExport != FileVersion && head.AuditlogExport != 1) {
		return nil, bad(1, "not the header of an auditlog NDJSON export")
	}
	cp, err := treelog.Open(head.Checkpoint, verifierKey)
	if err != nil {
		return nil, bad(1, "checkpoint: %v", err)
	}
	if head.AuditlogExport == 1 {
		return verifyProvedLines(sc, cp, verifierKey)
	}
	v := &verifier{sc: sc, cp: cp, key: verifierKey, org: orgOf(cp), line: 1, digest: sha256.New(),
		seen: make([]uint64, (cp.Size+63)/64)}
	v.filterText = string(head.Filter)
	if err := json.Unmarshal(head.Filter, &v.filter); err != nil {
		return nil, bad(1, "the header's filter is not a filter")
	}
	return v.run()
}

// orgOf is the organization whose log cp is: its origin's last element.
func orgOf(cp treelog.Checkpoint) string {
	return cp.Origin[strings.LastIndexByte(cp.Origin, '/')+1:]
}

// verifier checks a version 3 file line by line.
type verifier struct {
	sc         *bufio.Scanner
	cp         treelog.Checkpoint
	key        string
	org        string
	filter     domain.Filter
	filterText string
	line       int
	n          int64
	digest     hash.Hash
	ends       leafSpan
	seen       []uint64 // the leaves of the lines so far
	leaves     []provedLeaf
	proof      []tlog.Hash
	built      []byte // scratch for rebuilt lines
	compact    bytes.Buffer
	slow       bytes.Buffer
}

// v3Line is any line of a version 3 file after the header.
type v3Line struct {
	ndjsonEvent
	N         *int64   `json:"n"`
	LeafIndex *int64   `json:"leafIndex"`
	Record    []byte   `json:"record"`
	Proof     []string `json:"proof"`
	Manifest  *string  `json:"manifest"`
}

func (v *verifier) run() (*Verified, error) {
	for v.sc.Scan() {
		v.line++
		raw := append(v.sc.Bytes(), '\n')
		var l v3Line
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, bad(v.line, "not JSON: %v", err)
		}
		switch {
		case l.Manifest != nil:
			if v.sc.Scan() {
				return nil, bad(v.line+1, "a line after the manifest")
			}
			return v.finish(*l.Manifest)
		case l.Proof != nil:
			hs, err := treelog.ParseHashes(l.Proof)
			if err != nil {
				return nil, bad(v.line, "proof: %v", err)
			}
			v.proof = append(v.proof, hs...)
		default:
			if err := v.event(&l, raw); err != nil {
				return nil, err
			}
		}
	}
	if err := v.sc.Err(); err != nil {
		return nil, bad(v.line+1, "%v", err)
	}
	return nil, bad(v.line+1, "the file ends without its manifest: lines are missing at its end")
}

// event checks an event line and keeps its leaf's hash.
func (v *verifier) event(l *v3Line, raw []byte) error {
	if v.proof != nil {
		return bad(v.line, "an event line after the proof: lines were moved")
	}
	v.n++
	if l.N == nil || *l.N != v.n {
		return bad(v.line, "is event %v of the export where event %d should be: a line is missing, added or moved before it", deref(l.N), v.n)
	}
	if l.LeafIndex == nil {
		return bad(v.line, "has no leafIndex")
	}
	leaf := *l.LeafIndex
	record := l.Record
	if record == nil {
		var err error
		if record, err = eventRecord(&l.ndjsonEvent, v.org); err != nil {
			return bad(v.line, "the event does not encode: %v", err)
		}
	} else {
		var e struct{ OrgID string }
		if json.Unmarshal(record, &e) != nil || e.OrgID != v.org {
			return bad(v.line, "record is not an event of %s", v.cp.Origin)
		}
	}
	line, err := v.rebuild(leaf, record)
	if err != nil {
		return bad(v.line, "%v", err)
	}
	if !bytes.Equal(line, raw) {
		what := "differs from the event's record"
		if l.Record == nil {
			what = "is not what the line's event gives"
		}
		return bad(v.line, "field %s %s", firstDifference(line, raw), what)
	}
	e := lineEvent(&l.ndjsonEvent, v.org)
	if !inFilter(v.filter, &e) {
		return bad(v.line, "event %s (type %s, source %s, actor %s, occurredAt %s) is not one the export's filter %s chooses",
			e.ID, e.Type, e.Source, e.Actor.ID, e.OccurredAt.Format(time.RFC3339Nano), v.filterText)
	}
	if leaf < 0 || leaf >= v.cp.Size {
		return bad(v.line, "leaf %d is outside the checkpoint's tree of %d", leaf, v.cp.Size)
	}
	if v.seen[leaf/64]&(1<<(leaf%64)) != 0 {
		i := slices.IndexFunc(v.leaves, func(p provedLeaf) bool { return p.index == leaf })
		return bad(v.line, "leaf %d is line %d's too: a line was repeated", leaf, v.leaves[i].line)
	}
	v.seen[leaf/64] |= 1 << (leaf % 64)
	v.leaves = append(v.leaves, provedLeaf{index: leaf, line: v.line, hash: tlog.RecordHash(record)})
	v.ends.add(leaf)
	v.digest.Write(raw)
	return nil
}

// rebuild is the line the writer makes for the event at leaf with record.
func (v *verifier) rebuild(leaf int64, record []byte) ([]byte, error) {
	line, ok := appendLine(v.built[:0], &v.compact, v.n, leaf, record, v.org)
	v.built = line
	if ok {
		return line, nil
	}
	v.slow.Reset()
	if err := encodeLine(&v.slow, v.n, leaf, record, v.org); err != nil {
		return nil, err
	}
	return v.slow.Bytes(), nil
}

// finish checks the file as a whole: the manifest's signature, the root the
// leaves and the proof rebuild, and the manifest's text.
func (v *verifier) finish(manifest string) (*Verified, error) {
	m, err := treelog.OpenNote(manifest, v.key)
	if err != nil {
		return nil, bad(v.line, "manifest: %v", err)
	}
	if !strings.HasPrefix(m, ManifestHeader+"\n") {
		return nil, bad(v.line, "the manifest is not a version 3 manifest, as the header says")
	}
	slices.SortFunc(v.leaves, func(a, b provedLeaf) int { return cmp.Compare(a.index, b.index) })
	root, err := rootOf(v.cp.Size, v.leaves, v.proof)
	if err == nil && root != v.cp.Hash {
		err = fmt.Errorf("they give root %s, the checkpoint has %s", root, v.cp.Hash)
	}
	if err != nil {
		return nil, bad(v.line, "the events and the proof do not rebuild the checkpoint's tree (%v): an event line was changed, "+
			"or is not the event at its leaf (another leaf's, or another organization's), or the proof was changed", err)
	}
	if signed := manifestLine(m, "filter "); signed != v.filterText {
		return nil, bad(v.line, "the manifest signed the filter %s, the header has %s", signed, v.filterText)
	}
	out := &Verified{Checkpoint: v.cp, Manifest: 3, Events: v.n, Filter: &v.filter, FirstLeaf: -1, LastLeaf: -1}
	if v.ends.any {
		out.FirstLeaf, out.LastLeaf = v.ends.first, v.ends.last
	}
	if want := manifestText(ManifestHeader, v.cp, v.n, v.digest.Sum(nil), v.filterText, v.ends); m != want {
		return nil, bad(v.line, "the manifest signed %q, the file has %q: lines were changed, added, removed or reordered", m, want)
	}
	out.judge(true)
	return out, nil
}

// inFilter says whether f chooses e, as the read model's query does, but
// for two things. The search term and the query are not checked: the read
// model matches free text against text it stores, which a verifier does not
// have (the signed filter still records both). And the time
// range is widened by a microsecond at each end, the precision at which
// Postgres compares the times.
func inFilter(f domain.Filter, e *domain.Event) bool {
	f.Search = ""
	if f.From != nil {
		from := f.From.Add(-time.Microsecond)
		f.From = &from
	}
	if f.To != nil {
		to := f.To.Add(time.Microsecond)
		f.To = &to
	}
	return f.Matches(e)
}

// manifestLine is the rest of the manifest line that starts with prefix.
func manifestLine(m, prefix string) string {
	for l := range strings.SplitSeq(m, "\n") {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			return rest
		}
	}
	return ""
}

// isZeroFilter says whether f lets every event through.
func isZeroFilter(f domain.Filter) bool {
	return len(f.Sources) == 0 && len(f.Categories) == 0 && len(f.Types) == 0 && len(f.ExcludeTypes) == 0 &&
		f.ActorID == "" && f.Search == "" && f.From == nil && f.To == nil && f.Query == ""
}

// firstDifference names the first top-level field in which two event lines
// differ.
func firstDifference(want, got []byte) string {
	var a, b map[string]json.RawMessage
	if json.Unmarshal(want, &a) != nil || json.Unmarshal(got, &b) != nil {
		return "(the line)"
	}
	for _, k := range []string{"id", "type", "category", "description", "source", "occurredAt", "recordedAt",
		"actor", "target", "ipAddress", "userAgent", "requestId", "details", "n", "leafIndex", "record", "proof"} {
		if !bytes.Equal(a[k], b[k]) {
			return k
		}
	}
	if len(a) != len(b) {
		return "(an extra field)"
	}
	return "(the encoding)"
}

func deref(n *int64) any {
	if n == nil {
		return "<none>"
	}
	return *n
}
