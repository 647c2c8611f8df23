package ndjson

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"io"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/treelog"
)

// An NDJSON export proves itself: its first line holds a signed checkpoint
// of the organization's tree and the export's filter, every event line its
// leaf index (and its record, when the line alone does not rebuild it),
// then the range proof that, with the leaves the lines hash to, rebuilds
// the checkpoint's root (ranges.go), and last a signed manifest of the
// lines. Verify checks a file with the verifier key alone.

// Prover gives an NDJSON export the checkpoint, proof and signature that
// let it be checked offline.
type Prover interface {
	// Checkpoint is a signed checkpoint of org's tree covering every event
	// projected so far.
	Checkpoint(ctx context.Context, org string) (note string, cp treelog.Checkpoint, err error)
	// TreeHashes reads org's stored tree hashes. An export asks it once,
	// when its lines are written, for the hashes of the subtrees between
	// its leaves.
	TreeHashes(ctx context.Context, org string) (tlog.HashReader, error)
	// SignManifest signs text with the log's key.
	SignManifest(text string) (string, error)
}

// ManifestHeader is the first line of a manifest's text; it can never be a
// checkpoint's origin, so a manifest cannot pass for a checkpoint. Version 3
// heads files whose lines carry no inclusion proofs: one range proof after
// the lines proves them all.
const ManifestHeader = "auditlog export manifest v3"

// Earlier manifests, which Verify still reads: version 2 added the filter
// and the first and last leaf to version 1; both head files whose every
// line carries its record and inclusion proof.
const (
	manifestHeaderV2 = "auditlog export manifest v2"
	manifestHeaderV1 = "auditlog export manifest v1"
)

// FileVersion is the header's auditlogExport in the files this package
// writes, the number of their manifest's version. Files with a version 1 or
// 2 manifest have 1.
const FileVersion = 3

// exportHeader is the first line of an NDJSON export. Filter is there so a
// verifier checks each line against it as it reads; it counts only once
// the signed manifest, at the end, is found to hold the same filter.
type exportHeader struct {
	AuditlogExport int             `json:"auditlogExport"`
	Checkpoint     string          `json:"checkpoint"`
	Filter         json.RawMessage `json:"filter,omitempty"`
}

// proofLine is a line of the range proof, which follows the event lines:
// the hashes in order, at most proofLineHashes a line.
type proofLine struct {
	Proof []string `json:"proof"`
}

// proofLineHashes bounds a proof line, so a filter that leaves many gaps
// between the leaves makes more lines, not one too long to read.
const proofLineHashes = 1000

// exportTrailer is the last line of an NDJSON export.
type exportTrailer struct {
	Manifest string `json:"manifest"`
}

// eventLine is an event line: the event as the API shows it, decoded from
// its record, with its position n (1-based) among the file's events, its
// leaf, and its record when eventRecord does not rebuild the record from
// the line.
type eventLine struct {
	ndjsonEvent
	N         int64  `json:"n"`
	LeafIndex int64  `json:"leafIndex"`
	Record    []byte `json:"record,omitempty"`
}

// lineEvent is the event a line's fields give.
func lineEvent(e *ndjsonEvent, org string) domain.Event {
	return domain.Event{
		ID: e.ID, OrgID: org, Source: e.Source, Type: e.Type, OccurredAt: e.OccurredAt, RecordedAt: e.RecordedAt,
		Actor: e.Actor, Target: e.Target, IPAddress: e.IPAddress, UserAgent: e.UserAgent, RequestID: e.RequestID, Details: e.Details,
	}
}

// eventRecord is the record a line without one stands for: the line's
// event in org as ingest encodes it (json.Marshal).
func eventRecord(e *ndjsonEvent, org string) ([]byte, error) {
	ev := lineEvent(e, org)
	return json.Marshal(&ev)
}

// showEvent is the line's view of an event record.
func showEvent(e *domain.Event) ndjsonEvent {
	details := e.Details
	if len(details) == 0 {
		details = json.RawMessage("{}")
	}
	return ndjsonEvent{
		ID: e.ID, Type: e.Type, Category: e.Category(), Description: e.Description(), Source: e.Source,
		OccurredAt: e.OccurredAt.UTC(), RecordedAt: e.RecordedAt.UTC(), Actor: e.Actor, Target: e.Target,
		IPAddress: e.IPAddress, UserAgent: e.UserAgent, RequestID: e.RequestID, Details: details,
	}
}

// encodeLine is the one encoding of an event line of org's export, shared
// by the writer and the verifier, so a verifier can rebuild a line byte for
// byte. The line holds the record unless eventRecord rebuilds it.
func encodeLine(w io.Writer, n, leaf int64, record []byte, org string) error {
	var e domain.Event
	if err := json.Unmarshal(record, &e); err != nil {
		return fmt.Errorf("record is not an event: %w", err)
	}
	l := eventLine{ndjsonEvent: showEvent(&e), N: n, LeafIndex: leaf, Record: record}
	if rebuilt, err := eventRecord(&l.ndjsonEvent, org); err == nil && bytes.Equal(rebuilt, record) {
		l.Record = nil
	}
	return json.NewEncoder(w).Encode(l)
}

// ProvedEncoder writes an NDJSON export with its proof.
type ProvedEncoder struct {
	ctx     context.Context
	w       *bufio.Writer
	prover  Prover
	org     string
	cp      treelog.Checkpoint
	filter  []byte
	n       int64
	ends    leafSpan
	runs    leafRuns
	digest  hash.Hash
	line    []byte
	compact bytes.Buffer
	slow    bytes.Buffer
}

// NewProvedEncoder writes the header of a proved export of org's events
// chosen by f to w: a checkpoint of org's tree that p signs, which the
// file's proof rebuilds, and the filter.
func NewProvedEncoder(ctx context.Context, w io.Writer, p Prover, org string, f domain.Filter) (*ProvedEncoder, error) {
	note, cp, err := p.Checkpoint(ctx, org)
	if err != nil {
		return nil, fmt.Errorf("export checkpoint: %w", err)
	}
	filter, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	e := &ProvedEncoder{ctx: ctx, w: bufio.NewWriterSize(w, 64<<10), prover: p, org: org, cp: cp, filter: filter, digest: sha256.New()}
	return e, json.NewEncoder(e.w).Encode(exportHeader{AuditlogExport: FileVersion, Checkpoint: note, Filter: filter})
}

// Covers says whether e is in the checkpoint's tree: events projected after
// it was issued are left out of the file.
func (p *ProvedEncoder) Covers(e *domain.Event) bool {
	return e.LeafIndex != nil && *e.LeafIndex < p.cp.Size && e.Record != nil
}

// Encode writes e's line. e must be covered (Covers).
func (p *ProvedEncoder) Encode(e *domain.Event) error {
	leaf := *e.LeafIndex
	p.n++
	line, ok := appendLine(p.line[:0], &p.compact, p.n, leaf, e.Record, p.org)
	if !ok {
		// A record the fast path does not handle: encodeLine, the
		// format's definition, writes it.
		p.slow.Reset()
		if err := encodeLine(&p.slow, p.n, leaf, e.Record, p.org); err != nil {
			return fmt.Errorf("event %s: %w", e.ID, err)
		}
		line = append(line, p.slow.Bytes()...)
	}
	p.line = line
	p.ends.add(leaf)
	p.runs.add(leaf)
	p.digest.Write(line)
	_, err := p.w.Write(line)
	return err
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

// manifestText is what the manifest signs: its version, the log and tree
// the file proves against, how many event lines follow the header, their
// SHA-256, the filter that chose them (its from and to are the time range)
// and their first and last leaf.
func manifestText(header string, cp treelog.Checkpoint, n int64, digest []byte, filter string, leaves leafSpan) string {
	return fmt.Sprintf("%s\n%s\n%d\n%d\n%s\nfilter %s\nleaves %s\n",
		header, cp.Origin, cp.Size, n, base64.StdEncoding.EncodeToString(digest), filter, leaves)
}

// Flush writes the range proof and the signed manifest.
func (p *ProvedEncoder) Flush() error {
	enc := json.NewEncoder(p.w)
	err := rangeProof(p.cp.Size, p.runs, func() (tlog.HashReader, error) { return p.prover.TreeHashes(p.ctx, p.org) },
		func(proof []tlog.Hash) error {
			for len(proof) > 0 {
				k := min(len(proof), proofLineHashes)
				if err := enc.Encode(proofLine{Proof: treelog.EncodeHashes(proof[:k])}); err != nil {
					return err
				}
				proof = proof[k:]
			}
			return nil
		})
	if err != nil {
		return fmt.Errorf("export proof: %w", err)
	}
	m, err := p.prover.SignManifest(manifestText(ManifestHeader, p.cp, p.n, p.digest.Sum(nil), string(p.filter), p.ends))
	if err != nil {
		return err
	}
	if err := enc.Encode(exportTrailer{Manifest: m}); err != nil {
		return err
	}
	return p.w.Flush()
}
