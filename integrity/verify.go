package integrity

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/auditlog/auditlog/projector"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/readmodel"
	"github.com/auditlog/auditlog/retention"
	"github.com/auditlog/auditlog/tiles"
)

// Divergence is where the read model first departs from the stream: the
// leaf, the event the stream has there (if any), the field that differs,
// and what the stream says it should be against what the read model holds.
type Divergence struct {
	LeafIndex int64
	EventID   string
	Field     string
	Expected  string
	Found     string
}

// Verification is the result of recomputing an organization's tree from
// the stream and comparing the read model with it.
type Verification struct {
	// OK is set when nothing diverged.
	OK bool
	// Checked counts the leaves whose rows were compared.
	Checked int64
	// TreeSize is the size of the tree recomputed from the stream.
	TreeSize int64
	// Lag counts the leaves the stream holds that the read model had not
	// projected yet when it was read: a projection behind, not a
	// divergence. Their rows are compared once they are projected.
	Lag int64
	// Expired counts the leaves retention removed: the first ones, whose
	// messages aged out of the stream (the tree keeps their hashes, on which
	// the rest is recomputed, and a row still held for one is checked
	// against its kept leaf hash), and those whose rows went with a dropped
	// month (their hashes are still recomputed and checked).
	Expired int64
	// First is the divergence of the lowest leaf, or nil.
	First *Divergence
}

// OpenFunc checks a signed checkpoint note and returns its tree size and
// root hash.
type OpenFunc func(note string) (size int64, root tlog.Hash, err error)

// leaf is one leaf recomputed from the stream.
type leaf struct {
	index int64
	seq   uint64
	row   []any
}

// VerifyTree recomputes org's tree from the stream and compares, for the
// leaves in [from, to) (to < 0: all), the event rows, then the stored tree
// hashes, then every stored checkpoint (whose signature open checks) with
// it. It reports the divergence of the lowest leaf. Memory holds the tree's
// hashes (64 bytes a leaf) and the ids seen, to tell duplicates from
// leaves, not the events.
//
// The read model may be behind the stream while it is read: the leaves of
// messages past org's projected position that have no row yet are counted
// as Lag, not as a divergence. To tell the two apart without a snapshot,
// it reads in this order: org's projected position, the stored
// checkpoints, the stored tree size, the stream's head, then the rows up
// to that head; each read can only see as much as or more than the one
// before.
func VerifyTree(ctx context.Context, s *readmodel.EventStore, js jetstream.JetStream, org string, from, to int64, open OpenFunc) (*Verification, error) {
	projected, err := s.OrgPosition(ctx, org)
	if err != nil {
		return nil, err
	}
	cps, err := Checkpoints(ctx, s, org)
	if err != nil {
		return nil, err
	}
	storedSize, err := s.TreeSize(ctx, org)
	if err != nil {
		return nil, err
	}
	head, err := js.Stream(ctx, s.Stream())
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", org, err)
	}
	info, err := head.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", org, err)
	}
	through := info.State.LastSeq
	quarantined, err := s.Quarantined(ctx)
	if err != nil {
		return nil, err
	}
	skip := map[uint64]bool{}
	var held []readmodel.Quarantined
	for _, q := range quarantined {
		skip[q.Seq] = true
		if quarantinedFor(q, org) {
			held = append(held, q)
		}
	}
	if to < 0 {
		to = 1<<63 - 1
	}
	res := &Verification{}
	var first *Divergence
	found := func(d *Divergence) {
		if first == nil || d.LeafIndex < first.LeafIndex {
			first = d
		}
	}

	// Rows come in leaf order from one query and are merged with the leaves
	// as the stream yields them.
	rows, err := s.Pool().Query(ctx, fmt.Sprintf(`SELECT %s FROM %s.events
		WHERE org_id = $1 AND leaf_index >= $2 AND leaf_index < $3 AND stream_seq <= $4 ORDER BY leaf_index, id`, readmodel.SelectColumns, s.Schema()),
		org, from, to, int64(through))
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", org, err)
	}
	defer rows.Close()
	next := func() (*storedRow, error) {
		if !rows.Next() {
			return nil, rows.Err()
		}
		e, err := readmodel.ScanEvent(rows)
		if err != nil {
			return nil, err
		}
		return &storedRow{leaf: *e.LeafIndex, e: e, record: e.Record}, nil
	}
	cur, err := next()
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", org, err)
	}
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	seen := map[string]bool{}
	var dropped time.Time // the end of the latest month retention dropped
	// compareExpired checks the rows of leaves before the first one the
	// stream still holds against the leaf hashes the tree kept.
	compareExpired := func() error {
		for cur != nil && cur.leaf < res.Expired {
			if cur.leaf >= from && cur.leaf < to && first == nil {
				res.Checked++
				if tlog.RecordHash(cur.record) != stored[tlog.StoredHashIndex(0, cur.leaf)] {
					found(&Divergence{LeafIndex: cur.leaf, EventID: cur.e.ID, Field: "record",
						Expected: "the leaf hash the tree kept", Found: "a record with another hash"})
				}
			}
			if cur, err = next(); err != nil {
				return err
			}
		}
		return nil
	}
	compareLeaf := func(l leaf) error {
		if err := compareExpired(); err != nil {
			return err
		}
		if l.index < from || l.index >= to || first != nil {
			return nil
		}
		res.Checked++
		for cur != nil && cur.leaf < l.index { // a second row on an earlier leaf
			found(&Divergence{LeafIndex: cur.leaf, EventID: cur.e.ID, Field: "leafIndex",
				Expected: "one row per leaf", Found: "another row, event " + cur.e.ID})
			return nil
		}
		if (cur == nil || cur.leaf > l.index) && l.row[2].(time.Time).Before(dropped) {
			res.Expired++ // its month was dropped by retention
			return nil
		}
		if (cur == nil || cur.leaf > l.index) && l.seq > projected {
			res.Lag++ // not projected yet when the read model was read
			res.Checked--
			return nil
		}
		if cur == nil || cur.leaf > l.index {
			found(&Divergence{LeafIndex: l.index, EventID: l.row[1].(string), Field: "row", Expected: "event " + l.row[1].(string), Found: "no row"})
			return nil
		}
		if d := compareRow(l, cur); d != nil {
			found(d)
			return nil
		}
		cur, err = next()
		return err
	}

	// The stream has removed messages from its start, as its maximum age
	// (retention) does.
	agedOut := info.State.FirstSeq > 1
	retained, err := retention.ReadTotals(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", org, err)
	}
	dropped = retained.Through // rows of events before it are gone by design
	err = walkOrg(ctx, s, js, org, through, false, func(_ jetstream.Stream, seq uint64, m jetstream.Msg) error {
		subject, data := m.Subject(), m.Data()
		if skip[seq] {
			return nil
		}
		row, err := s.DecodeRow(projector.Message{Seq: seq, Subject: subject, Data: data})
		if err != nil {
			return nil // not an event, quarantined or about to be
		}
		if id := row[1].(string); seen[id] {
			return nil // a duplicate: not a leaf
		} else {
			seen[id] = true
		}
		if res.TreeSize == 0 && agedOut {
			// The stream no longer holds its first messages: start from
			// the hashes the tree kept for the leaves before this one.
			k, kept, err := keptPrefix(ctx, s, org, data)
			if err != nil {
				return err
			}
			stored, res.TreeSize, res.Expired = kept, k, k
		}
		n := res.TreeSize
		hashes, err := tlog.StoredHashes(n, data, reader)
		if err != nil {
			return err
		}
		stored = append(stored, hashes...)
		res.TreeSize++
		return compareLeaf(leaf{index: n, seq: seq, row: row})
	})
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", org, err)
	}
	if err := compareExpired(); err != nil {
		return nil, fmt.Errorf("verify %s: %w", org, err)
	}
	if first == nil && cur != nil {
		found(&Divergence{LeafIndex: cur.leaf, EventID: cur.e.ID, Field: "row", Expected: "no row: the stream has no such leaf", Found: "event " + cur.e.ID})
	}
	rows.Close()
	if err := verifyHashes(ctx, s, org, from, min(to, res.TreeSize, storedSize), stored, found); err != nil {
		return nil, err
	}
	// The stored tree was read before the stream's head, so it holds at
	// most the stream's leaves, and at least those projected before.
	if storedSize > res.TreeSize || storedSize < res.TreeSize-res.Lag {
		found(&Divergence{LeafIndex: min(storedSize, res.TreeSize), Field: "treeSize",
			Expected: fmt.Sprintf("%d, or up to %d leaves fewer while projecting", res.TreeSize, res.Lag), Found: strconv.FormatInt(storedSize, 10)})
	}
	if err := verifyCheckpoints(s, cps, res.TreeSize, reader, open, found); err != nil {
		return nil, err
	}
	if len(held) > 0 && first == nil {
		// The stream holds events of the org the read model does not: the
		// log cannot be called whole while one sits in quarantine.
		first = quarantineDivergence(held, res.TreeSize)
	}
	res.First, res.OK = first, first == nil
	return res, nil
}

// quarantinedFor reports whether q concerns org: its subject names org
// (audit.<region>.<org>.…), or its data claims to be one of org's events.
func quarantinedFor(q readmodel.Quarantined, org string) bool {
	if parts := strings.SplitN(q.Subject, ".", 4); len(parts) >= 3 && parts[2] == org {
		return true
	}
	var e struct {
		OrgID string `json:"orgId"`
	}
	return json.Unmarshal(q.Data, &e) == nil && e.OrgID == org
}

func quarantineDivergence(held []readmodel.Quarantined, size int64) *Divergence {
	q := held[0]
	var e struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(q.Data, &e)
	return &Divergence{LeafIndex: size, EventID: readmodel.Storable(e.ID), Field: "quarantine",
		Expected: "every message of the organization's stream applied to the read model",
		Found: fmt.Sprintf("%d message(s) quarantined, never applied; the first at stream sequence %d: %s",
			len(held), q.Seq, q.Error)}
}

// keptPrefix finds the leaf of org's tree whose record is data, the first
// the stream still holds, and returns its index k with the stored hashes of
// the tree of size k, which the tree kept when the messages before it aged
// out. A record the tree does not know starts the tree at 0, and the
// comparison then shows where the stream and the tree part.
func keptPrefix(ctx context.Context, s *readmodel.EventStore, org string, data []byte) (int64, []tlog.Hash, error) {
	k, found, err := s.FindLeaf(ctx, org, data)
	if err != nil {
		return 0, nil, err
	}
	if !found || k == 0 {
		return 0, nil, nil
	}
	count := tlog.StoredHashCount(k)
	kept, err := s.Tiles(ctx, org).Range(0, count)
	if err != nil {
		return 0, nil, fmt.Errorf("the tree of %s keeps not all the hashes of its first %d leaves: %w", org, k, err)
	}
	return k, kept, nil
}

// storedRow is an event row with its leaf and record.
type storedRow struct {
	leaf   int64
	e      *domain.Event
	record []byte
}

// compareRow compares the row stored for l with the event l's message is,
// field by field, in the order of readmodel.EventColumns.
func compareRow(l leaf, r *storedRow) *Divergence {
	var want domain.Event
	record := readmodel.RowRecord(l.row)
	_ = json.Unmarshal(record, &want) // it decoded before
	got := r.e
	div := func(field, expected, found string) *Divergence {
		return &Divergence{LeafIndex: l.index, EventID: want.ID, Field: field, Expected: expected, Found: found}
	}
	str := func(field, a, b string) *Divergence {
		if a != b {
			return div(field, a, b)
		}
		return nil
	}
	// Postgres keeps times to the microsecond.
	at := func(field string, a, b time.Time) *Divergence {
		if !a.Truncate(time.Microsecond).Equal(b.Truncate(time.Microsecond)) {
			return div(field, a.UTC().Format(time.RFC3339Nano), b.UTC().Format(time.RFC3339Nano))
		}
		return nil
	}
	var wt, gt domain.Target
	if want.Target != nil {
		wt = *want.Target
	}
	if got.Target != nil {
		gt = *got.Target
	}
	for _, d := range []*Divergence{
		str("id", want.ID, got.ID),
		str("orgId", want.OrgID, got.OrgID),
		str("source", string(want.Source), string(got.Source)),
		str("type", string(want.Type), string(got.Type)),
		at("occurredAt", want.OccurredAt, got.OccurredAt),
		at("recordedAt", want.RecordedAt, got.RecordedAt),
		str("actor.kind", string(want.Actor.Kind), string(got.Actor.Kind)),
		str("actor.id", want.Actor.ID, got.Actor.ID),
		str("actor.name", want.Actor.Name, got.Actor.Name),
		str("actor.email", want.Actor.Email, got.Actor.Email),
		str("target.kind", wt.Kind, gt.Kind),
		str("target.id", wt.ID, gt.ID),
		str("target.name", wt.Name, gt.Name),
		str("ipAddress", want.IPAddress, got.IPAddress),
		str("userAgent", want.UserAgent, got.UserAgent),
		str("requestId", want.RequestID, got.RequestID),
		sameJSON(div, want.Details, got.Details),
		str("streamSeq", strconv.FormatUint(l.seq, 10), strconv.FormatUint(got.Seq, 10)),
	} {
		if d != nil {
			return d
		}
	}
	if !bytes.Equal(record, r.record) {
		return div("record", base64.StdEncoding.EncodeToString(record), base64.StdEncoding.EncodeToString(r.record))
	}
	return nil
}

// sameJSON compares details as values: Postgres keeps them as jsonb, which
// does not keep the message's spacing or key order.
func sameJSON(div func(field, expected, found string) *Divergence, want, got json.RawMessage) *Divergence {
	if len(want) == 0 {
		want = json.RawMessage("{}")
	}
	var a, b any
	da, db := json.NewDecoder(bytes.NewReader(want)), json.NewDecoder(bytes.NewReader(got))
	da.UseNumber()
	db.UseNumber()
	if da.Decode(&a) != nil || db.Decode(&b) != nil || !reflect.DeepEqual(a, b) {
		return div("details", string(want), string(got))
	}
	return nil
}

// verifyHashes compares the stored hashes of the leaves in [from, to) with
// the ones recomputed. The stored ones are read from the tiles, which hold
// the hashes of tree levels 0, 8, 16, …; the others are computed from them,
// so a tampered tile shows as its first hash that differs.
func verifyHashes(ctx context.Context, s *readmodel.EventStore, org string, from, to int64, stored []tlog.Hash, found func(*Divergence)) error {
	if from >= to {
		return nil
	}
	lo, hi := tlog.StoredHashIndex(0, from), tlog.StoredHashIndex(0, to)
	leafOf := func(i int64) int64 {
		level, n := tlog.SplitStoredHashIndex(i)
		return n << level
	}
	tree := s.Tiles(ctx, org)
	// In chunks of about 64 tiles of leaves, so memory stays bounded.
	const chunk = 1 << 15
	for start := lo; start < hi; start += chunk {
		end := min(start+chunk, hi)
		got, err := tree.Range(start, end)
		if errors.Is(err, tiles.ErrMissing) {
			// Find the first hash no tile holds.
			for i := start; i < end; i++ {
				if _, err := tree.ReadHashes([]int64{i}); err != nil {
					found(&Divergence{LeafIndex: leafOf(i), Field: "treeHash", Expected: fmt.Sprintf("stored hash %d", i), Found: "none"})
					return nil
				}
			}
		}
		if err != nil {
			return fmt.Errorf("verify %s: tree hashes: %w", org, err)
		}
		for k, h := range got {
			if i := start + int64(k); h != stored[i] {
				found(&Divergence{LeafIndex: leafOf(i), Field: "treeHash",
					Expected: base64.StdEncoding.EncodeToString(stored[i][:]), Found: base64.StdEncoding.EncodeToString(h[:])})
				return nil
			}
		}
	}
	return nil
}

// verifyCheckpoints checks every stored checkpoint of org: its signature,
// that its columns are what its note says, and that its root is the root
// of the recomputed tree at its size. A bad checkpoint is located at its
// tree's last leaf.
func verifyCheckpoints(s *readmodel.EventStore, cps []SignedCheckpoint, size int64, r tlog.HashReader, open OpenFunc, found func(*Divergence)) error {
	b64 := func(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }
	for _, c := range cps {
		at := max(c.Size-1, 0)
		field := "checkpoint[" + strconv.FormatInt(c.Size, 10) + "]"
		n, root, err := open(c.Note)
		switch {
		case err != nil:
			found(&Divergence{LeafIndex: at, Field: field + ".note", Expected: "a note signed by the log's key", Found: err.Error()})
		case n != c.Size || root != c.Root:
			found(&Divergence{LeafIndex: at, Field: field + ".note", Expected: fmt.Sprintf("%d %s", c.Size, b64(c.Root)), Found: fmt.Sprintf("%d %s", n, b64(root))})
		case c.Size > size:
			found(&Divergence{LeafIndex: at, Field: field + ".treeSize", Expected: "at most " + strconv.FormatInt(size, 10), Found: strconv.FormatInt(c.Size, 10)})
		default:
			want, err := tlog.TreeHash(c.Size, r)
			if err != nil {
				return err
			}
			if want != c.Root {
				found(&Divergence{LeafIndex: at, Field: field + ".rootHash", Expected: b64(want), Found: b64(c.Root)})
			}
		}
	}
	return nil
}

// walkOrg hands fn every message of org the stream holds up to through, in
// order: headers only when headersOnly, else with their data.
func walkOrg(ctx context.Context, s *readmodel.EventStore, js jetstream.JetStream, org string, through uint64, headersOnly bool,
	fn func(stream jetstream.Stream, seq uint64, m jetstream.Msg) error) error {
	if through == 0 {
		return nil
	}
	stream, err := js.Stream(ctx, s.Stream())
	if err != nil {
		return err
	}
	subject := "audit.*." + org + ".>"
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return err
	}
	if len(info.State.Subjects) == 0 {
		return nil
	}
	iter, err := messages(ctx, s, stream, subject, headersOnly)
	if err != nil {
		return err
	}
	defer iter.Stop()
	for {
		nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := iter.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			return fmt.Errorf("read stream: %w", err)
		}
		md, err := m.Metadata()
		if err != nil {
			return err
		}
		if md.Sequence.Stream > through {
			return nil
		}
		if err := fn(stream, md.Sequence.Stream, m); err != nil {
			return err
		}
		if md.NumPending == 0 {
			return nil
		}
	}
}
