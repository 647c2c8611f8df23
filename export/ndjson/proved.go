package ndjson

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/bits"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/treelog"
)

// An NDJSON export proves itself: its first line holds a signed checkpoint
// of the organization's tree, every event line its record (the leaf), leaf
// index and inclusion proof against that checkpoint, and its last line a
// signed manifest of the lines in between. Verify checks a file with
// the verifier key alone.

// Prover gives an NDJSON export the checkpoint, proofs and signature that
// let it be checked offline.
type Prover interface {
	// Checkpoint is a signed checkpoint of org's tree covering every event
	// projected so far.
	Checkpoint(ctx context.Context, org string) (note string, cp treelog.Checkpoint, err error)
	// TreeHashes reads org's stored tree hashes. An export asks it once per
	// batch of events, with every hash the batch's proofs need, so a batch
	// costs one query rather than a few per event.
	TreeHashes(ctx context.Context, org string) (tlog.HashReader, error)
	// SignManifest signs text with the log's key.
	SignManifest(text string) (string, error)
}

// ManifestHeader is the first line of a manifest's text; it can never be a
// checkpoint's origin, so a manifest cannot pass for a checkpoint. Version 2
// adds the export's filter and its first and last leaf, so a verifier can
// tell a filtered export from the whole log.
const ManifestHeader = "auditlog export manifest v2"

// manifestHeaderV1 heads the manifests of exports made before the filter
// was recorded; they still verify, with their completeness unknown.
const manifestHeaderV1 = "auditlog export manifest v1"

// exportHeader is the first line of an NDJSON export.
type exportHeader struct {
	AuditlogExport int    `json:"auditlogExport"`
	Checkpoint     string `json:"checkpoint"`
}

// exportTrailer is the last line of an NDJSON export.
type exportTrailer struct {
	Manifest string `json:"manifest"`
}

// provedLine is an event line: the event as the API shows it, decoded from
// its record, with the record, its leaf and proof, and its position n
// (1-based) among the file's events.
type provedLine struct {
	ndjsonEvent
	N         int64    `json:"n"`
	LeafIndex int64    `json:"leafIndex"`
	Record    []byte   `json:"record"`
	Proof     []string `json:"proof"`
}

// encodeLine is the one encoding of an event line, shared by the writer and
// the verifier, so a verifier can rebuild a line byte for byte.
func encodeLine(w io.Writer, n, leaf int64, record []byte, proof []string) error {
	var e domain.Event
	if err := json.Unmarshal(record, &e); err != nil {
		return fmt.Errorf("record is not an event: %w", err)
	}
	details := e.Details
	if len(details) == 0 {
		details = json.RawMessage("{}")
	}
	return json.NewEncoder(w).Encode(provedLine{
		ndjsonEvent: ndjsonEvent{
			ID: e.ID, Type: e.Type, Category: e.Category(), Description: e.Description(), Source: e.Source,
			OccurredAt: e.OccurredAt.UTC(), RecordedAt: e.RecordedAt.UTC(), Actor: e.Actor, Target: e.Target,
			IPAddress: e.IPAddress, UserAgent: e.UserAgent, RequestID: e.RequestID, Details: details,
		},
		N: n, LeafIndex: leaf, Record: record, Proof: proof,
	})
}

// proofBatch is how many events share one read of the tree's hashes: the
// proofs of neighbouring leaves share most of their hashes, and memory holds
// a batch of events, not the file.
const proofBatch = 1024

// ProvedEncoder writes an NDJSON export with proofs, a batch of events at a
// time.
type ProvedEncoder struct {
	ctx     context.Context
	w       *bufio.Writer
	prover  Prover
	org     string
	cp      treelog.Checkpoint
	filter  domain.Filter
	n       int64
	leaves  leafSpan
	digest  hash.Hash
	line    []byte
	compact bytes.Buffer
	pending []*domain.Event
	batch   []int64
}

// NewProvedEncoder writes the header of a proved export of org's events
// chosen by f to w: a checkpoint of org's tree that p signs, whose tree
// the event lines are proved against.
func NewProvedEncoder(ctx context.Context, w io.Writer, p Prover, org string, f domain.Filter) (*ProvedEncoder, error) {
	note, cp, err := p.Checkpoint(ctx, org)
	if err != nil {
		return nil, fmt.Errorf("export checkpoint: %w", err)
	}
	e := &ProvedEncoder{ctx: ctx, w: bufio.NewWriterSize(w, 64<<10), prover: p, org: org, cp: cp, filter: f, digest: sha256.New()}
	return e, json.NewEncoder(e.w).Encode(exportHeader{AuditlogExport: 1, Checkpoint: note})
}

// Covers says whether e is in the checkpoint's tree: events projected after
// it was issued are left out of the file.
func (p *ProvedEncoder) Covers(e *domain.Event) bool {
	return e.LeafIndex != nil && *e.LeafIndex < p.cp.Size && e.Record != nil
}

// Encode queues e; its line is written with its batch.
func (p *ProvedEncoder) Encode(e *domain.Event) error {
	p.pending = append(p.pending, e)
	if len(p.pending) < proofBatch {
		return nil
	}
	return p.writeBatch()
}

// writeBatch proves the queued events with one read of the tree and writes
// their lines.
func (p *ProvedEncoder) writeBatch() error {
	if len(p.pending) == 0 {
		return nil
	}
	p.batch = p.batch[:0]
	for _, e := range p.pending {
		p.batch = append(p.batch, *e.LeafIndex)
	}
	hashes, err := p.prover.TreeHashes(p.ctx, p.org)
	if err != nil {
		return fmt.Errorf("export proofs: %w", err)
	}
	proofs, err := proveRecords(p.cp.Size, p.batch, hashes)
	if err != nil {
		return fmt.Errorf("export proofs: %w", err)
	}
	for i, e := range p.pending {
		p.n++
		p.leaves.add(*e.LeafIndex)
		line, ok := appendLine(p.line[:0], &p.compact, p.n, *e.LeafIndex, e.Record, proofs[i])
		if !ok {
			// A record the fast path does not handle: encodeLine, the
			// format's definition, writes it.
			b := bytes.NewBuffer(line)
			if err := encodeLine(b, p.n, *e.LeafIndex, e.Record, treelog.EncodeHashes(proofs[i])); err != nil {
				return fmt.Errorf("event %s: %w", e.ID, err)
			}
			line = b.Bytes()
		}
		p.line = line
		p.digest.Write(line)
		if _, err := p.w.Write(line); err != nil {
			return err
		}
	}
	clear(p.pending)
	p.pending = p.pending[:0]
	return nil
}

// proveRecords is the inclusion proof of each of leaves in the tree of size,
// reading every hash they need from r with one call. Each proof is the one
// tlog.ProveRecord gives, but a subtree's hash is read or computed once per
// batch, not once per proof that holds it: neighbouring leaves share all
// but their lowest siblings.
func proveRecords(size int64, leaves []int64, r tlog.HashReader) ([]tlog.RecordProof, error) {
	// The proof of a leaf is the hash of each sibling on its path from the
	// root, lowest first (tlog's leafProof). A left sibling is a complete
	// subtree, one stored hash; a right one may be the tree's incomplete
	// right edge, hashed from the complete subtrees it splits into.
	type span struct{ lo, hi int64 }
	paths := make([][]span, len(leaves))
	nodes := make(map[span]tlog.Hash)
	for k, leaf := range leaves {
		if size <= 0 || leaf < 0 || leaf >= size {
			return nil, fmt.Errorf("leaf %d of a tree of %d: %w", leaf, size, errors.New("invalid leaf"))
		}
		var path []span
		for lo, hi := int64(0), size; lo+1 < hi; {
			m := lo + maxPow2Below(hi-lo)
			if leaf < m {
				path = append(path, span{m, hi})
				hi = m
			} else {
				path = append(path, span{lo, m})
				lo = m
			}
		}
		paths[k] = path
		for _, s := range path {
			nodes[s] = tlog.Hash{}
		}
	}
	// The stored hashes of the complete subtrees the siblings split into.
	var indexes []int64
	pieces := func(s span, visit func(level int, lo int64)) {
		for lo := s.lo; lo < s.hi; {
			k := maxPow2Below(s.hi - lo + 1)
			level := bits.TrailingZeros64(uint64(k))
			visit(level, lo)
			lo += k
		}
	}
	for s := range nodes {
		pieces(s, func(level int, lo int64) { indexes = append(indexes, tlog.StoredHashIndex(level, lo>>level)) })
	}
	found, err := r.ReadHashes(indexes)
	if err != nil {
		return nil, err
	}
	if len(found) != len(indexes) {
		return nil, fmt.Errorf("read %d tree hashes, got %d", len(indexes), len(found))
	}
	stored := make(map[int64]tlog.Hash, len(indexes))
	for k, i := range indexes {
		stored[i] = found[k]
	}
	var hs []tlog.Hash
	for s := range nodes {
		hs = hs[:0]
		pieces(s, func(level int, lo int64) { hs = append(hs, stored[tlog.StoredHashIndex(level, lo>>level)]) })
		h := hs[len(hs)-1]
		for i := len(hs) - 2; i >= 0; i-- {
			h = tlog.NodeHash(hs[i], h)
		}
		nodes[s] = h
	}
	proofs := make([]tlog.RecordProof, len(leaves))
	total := 0
	for _, p := range paths {
		total += len(p)
	}
	flat := make([]tlog.Hash, total)
	for k, path := range paths {
		proof := flat[:len(path):len(path)]
		flat = flat[len(path):]
		for i, s := range path {
			proof[len(path)-1-i] = nodes[s]
		}
		proofs[k] = proof
	}
	return proofs, nil
}

// maxPow2Below is the largest power of 2 smaller than n (n > 1), as tlog's
// maxpow2.
func maxPow2Below(n int64) int64 {
	return 1 << (bits.Len64(uint64(n-1)) - 1)
}

// leafSpan is the first and last leaf of an export's lines.
type leafSpan struct {
	first, last int64
	any         bool
}

func (s *leafSpan) add(leaf int64) {
	if !s.any {
		s.first, s.any = leaf, true
	}
	s.last = leaf
}

func (s leafSpan) String() string {
	if !s.any {
		return "- -"
	}
	return fmt.Sprintf("%d %d", s.first, s.last)
}

// manifestText is what the manifest signs: the log and tree the proofs are
// against, how many event lines follow the header, their SHA-256, the
// filter that chose them (its from and to are the time range) and their
// first and last leaf.
func manifestText(cp treelog.Checkpoint, n int64, digest []byte, filter string, leaves leafSpan) string {
	return fmt.Sprintf("%s\n%s\n%d\n%d\n%s\nfilter %s\nleaves %s\n",
		ManifestHeader, cp.Origin, cp.Size, n, base64.StdEncoding.EncodeToString(digest), filter, leaves)
}

// manifestTextV1 is a version 1 manifest's text.
func manifestTextV1(cp treelog.Checkpoint, n int64, digest []byte) string {
	return fmt.Sprintf("%s\n%s\n%d\n%d\n%s\n", manifestHeaderV1, cp.Origin, cp.Size, n, base64.StdEncoding.EncodeToString(digest))
}

// Flush writes the last batch and the signed manifest.
func (p *ProvedEncoder) Flush() error {
	if err := p.writeBatch(); err != nil {
		return err
	}
	filter, err := json.Marshal(p.filter)
	if err != nil {
		return err
	}
	m, err := p.prover.SignManifest(manifestText(p.cp, p.n, p.digest.Sum(nil), string(filter), p.leaves))
	if err != nil {
		return err
	}
	if err := json.NewEncoder(p.w).Encode(exportTrailer{Manifest: m}); err != nil {
		return err
	}
	return p.w.Flush()
}

// LineError names the first line of an export that does not verify.
type LineError struct {
	Line   int
	Reason string
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// Verified is what Verify checked.
type Verified struct {
	Checkpoint treelog.Checkpoint
	Events     int64
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
	fmt.Fprintf(&b, "%d events, each in %s at tree size %d (root %s); signatures and manifest verify\n",
		v.Events, v.Checkpoint.Origin, v.Checkpoint.Size, v.Checkpoint.Hash)
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

// Verify checks an NDJSON export offline with the log's verifier key:
// the checkpoint's signature, every line against its record and its record
// against the checkpoint, and the signed manifest against the lines, so a
// changed byte, a line dropped, added or moved is found. It returns a
// *LineError naming the first bad line.
func Verify(r io.Reader, verifierKey string) (*Verified, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	bad := func(line int, format string, args ...any) error {
		return &LineError{Line: line, Reason: fmt.Sprintf(format, args...)}
	}
	if !sc.Scan() {
		return nil, bad(1, "the file is empty")
	}
	var head exportHeader
	if err := json.Unmarshal(sc.Bytes(), &head); err != nil || head.AuditlogExport != 1 {
		return nil, bad(1, "not the header of an auditlog NDJSON export")
	}
	cp, err := treelog.Open(head.Checkpoint, verifierKey)
	if err != nil {
		return nil, bad(1, "checkpoint: %v", err)
	}
	org := cp.Origin[strings.LastIndexByte(cp.Origin, '/')+1:]
	digest := sha256.New()
	var n int64
	var buf bytes.Buffer
	var leaves leafSpan
	seen := make([]uint64, (cp.Size+63)/64) // leaves present, to tell a whole log
	distinct := true
	line := 1
	for sc.Scan() {
		line++
		raw := append(sc.Bytes(), '\n')
		var l struct {
			N         *int64   `json:"n"`
			LeafIndex int64    `json:"leafIndex"`
			Record    []byte   `json:"record"`
			Proof     []string `json:"proof"`
			Manifest  *string  `json:"manifest"`
		}
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, bad(line, "not JSON: %v", err)
		}
		if l.Manifest != nil {
			if sc.Scan() {
				return nil, bad(line+1, "a line after the manifest")
			}
			v := &Verified{Checkpoint: cp, Events: n, FirstLeaf: -1, LastLeaf: -1}
			if leaves.any {
				v.FirstLeaf, v.LastLeaf = leaves.first, leaves.last
			}
			if err := checkManifest(v, *l.Manifest, verifierKey, digest.Sum(nil), leaves, line); err != nil {
				return nil, err
			}
			switch {
			case v.Filter == nil:
				v.Completeness = CompletenessUnknown
			case !isZeroFilter(*v.Filter):
				v.Completeness = PartialFiltered
			case distinct && n == cp.Size:
				v.Completeness = Complete
			default:
				v.Completeness = PartialUnfiltered
			}
			return v, nil
		}
		n++
		if l.N == nil || *l.N != n {
			return nil, bad(line, "is event %v of the export where event %d should be: a line is missing, added or moved before it", deref(l.N), n)
		}
		var e struct{ OrgID string }
		if json.Unmarshal(l.Record, &e) != nil || e.OrgID != org {
			return nil, bad(line, "record is not an event of %s", cp.Origin)
		}
		buf.Reset()
		if err := encodeLine(&buf, n, l.LeafIndex, l.Record, l.Proof); err != nil {
			return nil, bad(line, "%v", err)
		}
		if !bytes.Equal(buf.Bytes(), raw) {
			return nil, bad(line, "field %s differs from the event's record", firstDifference(buf.Bytes(), raw))
		}
		proof, err := treelog.ParseHashes(l.Proof)
		if err != nil {
			return nil, bad(line, "proof: %v", err)
		}
		if err := tlog.CheckRecord(proof, cp.Size, cp.Hash, l.LeafIndex, tlog.RecordHash(l.Record)); err != nil {
			return nil, bad(line, "record is not leaf %d of the checkpoint's tree of %d: %v", l.LeafIndex, cp.Size, err)
		}
		if seen[l.LeafIndex/64]&(1<<(l.LeafIndex%64)) != 0 {
			distinct = false
		}
		seen[l.LeafIndex/64] |= 1 << (l.LeafIndex % 64)
		leaves.add(l.LeafIndex)
		digest.Write(raw)
	}
	if err := sc.Err(); err != nil {
		return nil, bad(line+1, "%v", err)
	}
	return nil, bad(line+1, "the file ends without its manifest: lines are missing at its end")
}

// checkManifest checks the signed manifest against what the lines gave,
// and fills in v's filter from it.
func checkManifest(v *Verified, msg, verifierKey string, digest []byte, leaves leafSpan, line int) error {
	m, err := treelog.OpenNote(msg, verifierKey)
	if err != nil {
		return &LineError{Line: line, Reason: "manifest: " + err.Error()}
	}
	var want string
	if strings.HasPrefix(m, manifestHeaderV1+"\n") {
		want = manifestTextV1(v.Checkpoint, v.Events, digest)
	} else {
		// The filter is the one line the file does not tell: take it from
		// the signed text, and check the rest against the file.
		var f domain.Filter
		raw := manifestLine(m, "filter ")
		if err := json.Unmarshal([]byte(raw), &f); err != nil {
			return &LineError{Line: line, Reason: "the manifest records no readable filter"}
		}
		v.Filter = &f
		want = manifestText(v.Checkpoint, v.Events, digest, raw, leaves)
	}
	if m != want {
		return &LineError{Line: line, Reason: fmt.Sprintf("the manifest signed %q, the file has %q: lines were changed, added or removed", m, want)}
	}
	return nil
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
