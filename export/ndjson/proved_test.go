package ndjson

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/treelog"
)

// countingHashes is an in-memory tree's stored hashes that counts the reads
// made of it.
type countingHashes struct {
	stored []tlog.Hash
	leaves []int64
	reads  int
}

func (c *countingHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	c.reads++
	out := make([]tlog.Hash, len(indexes))
	for k, i := range indexes {
		if i < 0 || i >= int64(len(c.stored)) {
			return nil, fmt.Errorf("no stored hash %d", i)
		}
		out[k] = c.stored[i]
	}
	return out, nil
}

// add appends record to the tree.
func (c *countingHashes) add(t testing.TB, record []byte) {
	t.Helper()
	h, err := tlog.StoredHashes(int64(len(c.leaves)), record, c)
	if err != nil {
		t.Fatal(err)
	}
	c.stored = append(c.stored, h...)
	c.leaves = append(c.leaves, int64(len(c.leaves)))
}

// treeOf builds a tree of n records "record <i>", returning its stored
// hashes.
func treeOf(t *testing.T, n int64) *countingHashes {
	t.Helper()
	c := &countingHashes{}
	for i := range n {
		c.add(t, fmt.Appendf(nil, "record %d", i))
	}
	c.reads = 0
	return c
}

// The range proof of any set of leaves, with the leaves' own hashes,
// rebuilds the root tlog computes, and only that root: every tree size up
// to 70 and every kind of set, read from the tree in one call.
func TestRangeProofRebuildsTheRoot(t *testing.T) {
	tree := treeOf(t, 70)
	sets := map[string]func(size int64) []int64{
		"none":        func(int64) []int64 { return nil },
		"all":         func(size int64) []int64 { return span(0, size) },
		"the first":   func(int64) []int64 { return []int64{0} },
		"the last":    func(size int64) []int64 { return []int64{size - 1} },
		"every other": func(size int64) []int64 { return every(size, 2) },
		"every fifth": func(size int64) []int64 { return every(size, 5) },
		"the middle":  func(size int64) []int64 { return span(size/3, 2*size/3) },
		"two runs":    func(size int64) []int64 { return append(span(0, size/4), span(size/2, size-1)...) },
	}
	for size := int64(1); size <= 70; size++ {
		root, err := tlog.TreeHash(size, tree)
		if err != nil {
			t.Fatal(err)
		}
		for name, set := range sets {
			leaves := set(size)
			// Newest first, as exports list them.
			var runs leafRuns
			for _, l := range slices.Backward(leaves) {
				runs.add(l)
			}
			tree.reads = 0
			proof, err := proveRange(size, runs, tree)
			if err != nil {
				t.Fatalf("size %d, %s: %v", size, name, err)
			}
			if tree.reads > 1 {
				t.Fatalf("size %d, %s: %d reads of the tree", size, name, tree.reads)
			}
			proved := make([]provedLeaf, len(leaves))
			for i, l := range leaves {
				proved[i] = provedLeaf{index: l, hash: tlog.RecordHash(fmt.Appendf(nil, "record %d", l))}
			}
			got, err := rootOf(size, proved, proof)
			if err != nil || got != root {
				t.Fatalf("size %d, %s: root %v, %v; want %v", size, name, got, err, root)
			}
			if len(proved) > 0 {
				changed := slices.Clone(proved)
				changed[len(changed)/2].hash[0] ^= 1
				if got, err := rootOf(size, changed, proof); err == nil && got == root {
					t.Fatalf("size %d, %s: a changed leaf rebuilds the root", size, name)
				}
			}
			if len(proof) > 0 {
				if _, err := rootOf(size, proved, proof[1:]); err == nil {
					t.Fatalf("size %d, %s: a proof short of a hash is taken", size, name)
				}
			}
			if _, err := rootOf(size, proved, append(slices.Clone(proof), tlog.Hash{})); err == nil {
				t.Fatalf("size %d, %s: a proof with a hash too many is taken", size, name)
			}
		}
	}
}

// proveRange is the whole range proof of runs, read from tree.
func proveRange(size int64, runs leafRuns, tree tlog.HashReader) ([]tlog.Hash, error) {
	var proof []tlog.Hash
	err := rangeProof(size, runs, func() (tlog.HashReader, error) { return tree, nil }, func(hs []tlog.Hash) error {
		proof = append(proof, hs...)
		return nil
	})
	return proof, err
}

// A proof of many gaps is read in several bounded reads, and still
// rebuilds the root.
func TestRangeProofReadsInChunks(t *testing.T) {
	const size = 40_000
	tree := treeOf(t, size)
	root, err := tlog.TreeHash(size, tree)
	if err != nil {
		t.Fatal(err)
	}
	var runs leafRuns
	var proved []provedLeaf
	for l := int64(size - 1); l >= 0; l -= 2 { // every other leaf, newest first
		runs.add(l)
	}
	for l := int64(1); l < size; l += 2 {
		proved = append(proved, provedLeaf{index: l, hash: tlog.RecordHash(fmt.Appendf(nil, "record %d", l))})
	}
	tree.reads = 0
	proof, err := proveRange(size, runs, tree)
	if err != nil {
		t.Fatal(err)
	}
	if len(proof) != size/2 || tree.reads != (size/2+readChunk-1)/readChunk {
		t.Fatalf("%d hashes in %d reads", len(proof), tree.reads)
	}
	if got, err := rootOf(size, proved, proof); err != nil || got != root {
		t.Fatalf("root %v, %v; want %v", got, err, root)
	}
}

func span(from, to int64) []int64 {
	var out []int64
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func every(size, k int64) []int64 {
	var out []int64
	for i := int64(0); i < size; i += k {
		out = append(out, i)
	}
	return out
}

// A leaf listed twice, or outside the tree, has no range proof.
func TestGapsRefuseRepeatedLeaves(t *testing.T) {
	for name, leaves := range map[string][]int64{
		"the same leaf twice":        {5, 5},
		"a leaf inside an older run": {9, 8, 7, 3, 8},
		"a leaf outside the tree":    {10},
	} {
		var runs leafRuns
		for _, l := range leaves {
			runs.add(l)
		}
		if err := runs.sort(10); err == nil {
			t.Errorf("%s: %v sorts", name, leaves)
		}
	}
}

// keyProver signs with a real key over an in-memory tree of one
// organization's records.
type keyProver struct {
	tree   *countingHashes
	origin string
	signer note.Signer
}

func (p keyProver) Checkpoint(context.Context, string) (string, treelog.Checkpoint, error) {
	size := int64(len(p.tree.leaves))
	// Read past the count, which is of the export's reads.
	root, err := tlog.TreeHash(size, tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for k, i := range indexes {
			out[k] = p.tree.stored[i]
		}
		return out, nil
	}))
	if err != nil {
		return "", treelog.Checkpoint{}, err
	}
	cp := treelog.Checkpoint{Origin: p.origin, Size: size, Hash: root}
	signed, err := treelog.Sign(cp, p.signer)
	return signed, cp, err
}

func (p keyProver) TreeHashes(context.Context, string) (tlog.HashReader, error) { return p.tree, nil }

func (p keyProver) SignManifest(text string) (string, error) {
	msg, err := note.Sign(&note.Note{Text: text}, p.signer)
	return string(msg), err
}

// testLog is an organization's log in memory, with a signing key.
type testLog struct {
	org    string
	prover keyProver
	events []domain.Event
	vkey   string
}

func newTestLog(t testing.TB, org string, n int) *testLog {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "test-log")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	l := &testLog{org: org, prover: keyProver{tree: &countingHashes{}, origin: "auditlog/us/" + org, signer: signer}, vkey: vkey}
	for i := range n {
		e := benchEvent(i)
		e.OrgID, e.ID = org, org+e.ID
		if i%3 == 0 {
			e.Type = "USER_LOGOUT"
		}
		switch i {
		case 30:
			// A record the line does not rebuild (a time not in UTC): its
			// line carries it.
			e.OccurredAt = e.OccurredAt.In(time.FixedZone("CET", 3600))
			e.Actor.Name = "Grace Hopper"
		case 33:
			// A record the fast path does not take, but the line rebuilds.
			e.Actor.Name = "<Grace & Hopper>"
		}
		l.add(t, e)
	}
	return l
}

// add records e as the next leaf.
func (l *testLog) add(t testing.TB, e domain.Event) {
	e.Record = marshalled(t, e)
	leaf := int64(len(l.events))
	e.LeafIndex = &leaf
	l.prover.tree.add(t, e.Record)
	l.events = append(l.events, e)
}

// export writes a version 3 export of the events f chooses, newest first.
func (l *testLog) export(t testing.TB, f domain.Filter) []byte {
	t.Helper()
	var b bytes.Buffer
	p, err := NewProvedEncoder(context.Background(), &b, l.prover, l.org, f)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(l.events) - 1; i >= 0; i-- {
		if !f.Matches(&l.events[i]) {
			continue
		}
		if err := p.Encode(&l.events[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// lines splits a file into its lines, each with its newline.
func lines(file []byte) fileLines {
	ls := bytes.SplitAfter(file, []byte("\n"))
	return ls[:len(ls)-1]
}

// A version 3 export verifies with the key alone, tells a filtered export
// from the whole log, and a file whose every line is proved at once: no
// line carries a proof, and a line whose record its fields rebuild carries
// no record.
func TestVerifyAcceptsAnExport(t *testing.T) {
	log := newTestLog(t, "acme", 40)
	whole := log.export(t, domain.Filter{})
	v, err := Verify(bytes.NewReader(whole), log.vkey)
	if err != nil {
		t.Fatal(err)
	}
	if v.Manifest != 3 || v.Events != 40 || v.Completeness != Complete || v.FirstLeaf != 39 || v.LastLeaf != 0 {
		t.Fatalf("the whole log verifies as %+v", v)
	}
	ls := lines(whole)
	if len(ls) != 42 { // header, 40 events, manifest: no gaps, no proof
		t.Fatalf("%d lines for 40 events and no gap", len(ls))
	}
	for i, l := range ls[1 : len(ls)-1] {
		if bytes.Contains(l, []byte(`"proof"`)) {
			t.Fatalf("event line %d carries a proof: %s", i+1, l)
		}
		leaf := 39 - i
		if has := bytes.Contains(l, []byte(`"record":`)); has != (leaf == 30) {
			t.Fatalf("leaf %d: record in the line %v\n%s", leaf, has, l)
		}
	}

	from := log.events[10].OccurredAt
	f := domain.Filter{Types: []domain.EventType{"USER_LOGOUT"}, From: &from}
	filtered := log.export(t, f)
	v, err = Verify(bytes.NewReader(filtered), log.vkey)
	if err != nil {
		t.Fatal(err)
	}
	if v.Events != 10 || v.Completeness != PartialFiltered || v.Filter == nil || !v.Filter.From.Equal(from) ||
		!strings.Contains(v.String(), "time range: "+from.Format(time.RFC3339Nano)+" to (open)") {
		t.Fatalf("the filtered export verifies as %+v\n%s", v, v)
	}
	if !bytes.Contains(filtered, []byte(`{"proof":[`)) {
		t.Fatal("a filtered export has no range proof")
	}

	empty := log.export(t, domain.Filter{ActorID: "nobody"})
	if v, err := Verify(bytes.NewReader(empty), log.vkey); err != nil || v.Events != 0 || v.FirstLeaf != -1 {
		t.Fatalf("an export of no events: %+v, %v", v, err)
	}
}

// Each way of tampering with an export is found, and named.
func TestVerifyFindsTampering(t *testing.T) {
	log := newTestLog(t, "acme", 40)
	from := log.events[10].OccurredAt
	f := domain.Filter{Types: []domain.EventType{"USER_LOGOUT"}, From: &from}
	file := log.export(t, f)
	ls := lines(file)
	last := len(ls) // the manifest's line
	// Line 2 is leaf 39, line k leaf 42-3k (every third leaf, newest first);
	// leaf 30's line carries its record.
	other := newTestLog(t, "globex", 40)
	otherLines := lines(other.export(t, f))
	// Another export of the same log, with another filter.
	wider := lines(log.export(t, domain.Filter{Types: []domain.EventType{"USER_LOGOUT"}}))
	// The same filter over a log that grew: another tree size.
	grown := newTestLog(t, "acme", 40)
	grown.prover.signer = log.prover.signer
	grown.add(t, benchEvent(41))
	sameFilter := lines(grown.export(t, f))
	proofRe := regexp.MustCompile(`"proof":\["[^"]*"`)

	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }
	with := func(i int, line []byte) []byte {
		c := slices.Clone(ls)
		c[i] = line
		return join(c...)
	}
	replaced := func(i int, old, new string) []byte {
		if !bytes.Contains(ls[i], []byte(old)) {
			t.Fatalf("line %d has no %q", i+1, old)
		}
		return with(i, bytes.Replace(ls[i], []byte(old), []byte(new), 1))
	}
	renumbered := func(line []byte, n int) []byte {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		old := `,"n":` + string(m["n"]) + `,`
		return bytes.Replace(line, []byte(old), fmt.Appendf(nil, `,"n":%d,`, n), 1)
	}
	tests := []struct {
		name   string
		file   []byte
		line   int
		reason string
	}{
		{"a field of a line changed", replaced(6, "Bench User", "Bench Usor"), last, "do not rebuild the checkpoint's tree"},
		{"a field of a line with its record changed", with(ls.lineOf(t, 30), bytes.Replace(ls[ls.lineOf(t, 30)], []byte("Hopper"), []byte("Hoppor"), 1)), ls.lineOf(t, 30) + 1, "field actor differs from the event's record"},
		{"a derived field changed", replaced(3, `"description":"`, `"description":"Not `), 4, "field description is not what the line's event gives"},
		{"a line dropped", join(slices.Delete(slices.Clone(ls), 4, 5)...), 5, "where event 4 should be"},
		{"two lines swapped", join(slices.Concat(ls[:2], [][]byte{ls[3], ls[2]}, ls[4:])...), 3, "where event 2 should be"},
		{"two lines swapped and renumbered", join(slices.Concat(ls[:2], [][]byte{renumbered(ls[3], 2), renumbered(ls[2], 3)}, ls[4:])...), last, "lines were changed, added, removed or reordered"},
		{"a line repeated", join(slices.Concat(ls[:4], [][]byte{renumbered(ls[2], 4)}, renumberedFrom(t, ls[4:last-1], 5), ls[last-1:])...), 5, "leaf 36 is line 3's too"},
		{"a line of another organization's", with(2, otherLines[2]), last, "do not rebuild the checkpoint's tree"},
		{"a line of another organization's, with its record", with(ls.lineOf(t, 30), otherLines[ls.lineOf(t, 30)]), ls.lineOf(t, 30) + 1, "record is not an event of auditlog/us/acme"},
		{"a line moved to another leaf", replaced(1, `"leafIndex":39`, `"leafIndex":38`), last, "do not rebuild the checkpoint's tree"},
		{"the header's filter widened", replaced(0, `"types":["USER_LOGOUT"],`, ``), last, "the manifest signed the filter"},
		{"the header's time range moved", replaced(0, `"from":`, `"to":`), 2, "is not one the export's filter"},
		{"the manifest of another export", with(last-1, wider[len(wider)-1]), last, "the manifest signed the filter"},
		{"the manifest of another export of the same filter", with(last-1, sameFilter[len(sameFilter)-1]), last, "lines were changed, added, removed or reordered"},
		{"a hash of the proof malformed", with(last-2, bytes.Replace(ls[last-2], []byte(`"proof":["`), []byte(`"proof":["AAAA`), 1)), last - 1, "proof"},
		{"a hash of the proof changed", with(last-2, proofRe.ReplaceAll(ls[last-2], []byte(`"proof":["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="`))), last, "do not rebuild the checkpoint's tree"},
		{"the proof dropped", join(slices.Delete(slices.Clone(ls), last-2, last-1)...), last - 1, "do not rebuild the checkpoint's tree"},
		{"the checkpoint changed", replaced(0, `auditlog/us/acme`, `auditlog/us/acmf`), 1, "checkpoint"},
		{"the header's version changed", replaced(0, `"auditlogExport":3`, `"auditlogExport":1`), 2, "record is not an event"},
		{"the manifest dropped", join(ls[:last-1]...), last, "ends without its manifest"},
		{"the last event dropped", join(slices.Delete(slices.Clone(ls), last-3, last-2)...), last - 1, "do not rebuild the checkpoint's tree"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(bytes.NewReader(tc.file), log.vkey)
			var le *LineError
			if !errors.As(err, &le) || le.Line != tc.line || !strings.Contains(le.Reason, tc.reason) {
				t.Fatalf("got %v, want line %d: …%s…", err, tc.line, tc.reason)
			}
		})
	}
	// Events the signed filter does not choose are found line by line,
	// against the header's filter: here the file was made with a filter its
	// events do not meet.
	after := log.events[30].OccurredAt
	lying := log.export(t, domain.Filter{})
	lying = bytes.Replace(lying, []byte(`"filter":{}`), fmt.Appendf(nil, `"filter":{"from":%q}`, after.Format(time.RFC3339Nano)), 1)
	_, err := Verify(bytes.NewReader(lying), log.vkey)
	var le *LineError
	if !errors.As(err, &le) || le.Line != 12 || !strings.Contains(le.Reason, "is not one the export's filter") {
		t.Fatalf("an event before the time range: %v", err)
	}
	// Another key does not verify it.
	_, vkey, _ := note.GenerateKey(rand.Reader, "someone-else")
	if _, err := Verify(bytes.NewReader(file), vkey); err == nil {
		t.Fatal("verifies with another key")
	}
}

type fileLines [][]byte

// lineOf is the index of the line of leaf, the line itself index+1.
func (ls fileLines) lineOf(t *testing.T, leaf int) int {
	for i, l := range ls {
		if bytes.Contains(l, fmt.Appendf(nil, `,"leafIndex":%d,`, leaf)) || bytes.Contains(l, fmt.Appendf(nil, `,"leafIndex":%d}`, leaf)) {
			return i
		}
	}
	t.Fatalf("no line of leaf %d", leaf)
	return 0
}

// renumberedFrom gives ls the numbers n, n+1, …
func renumberedFrom(t *testing.T, ls [][]byte, n int) [][]byte {
	out := make([][]byte, len(ls))
	for i, l := range ls {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatal(err)
		}
		out[i] = bytes.Replace(l, []byte(`,"n":`+string(m["n"])+`,`), fmt.Appendf(nil, `,"n":%d,`, n+i), 1)
	}
	return out
}

// writeV2 writes the file the version 2 writer wrote: every line with its
// record and inclusion proof.
func (l *testLog) writeV2(t *testing.T) []byte {
	t.Helper()
	signed, cp, err := l.prover.Checkpoint(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(exportHeader{AuditlogExport: 1, Checkpoint: signed}); err != nil {
		t.Fatal(err)
	}
	start := b.Len()
	var ends leafSpan
	for i := len(l.events) - 1; i >= 0; i-- {
		e := &l.events[i]
		proof, err := tlog.ProveRecord(cp.Size, *e.LeafIndex, l.prover.tree)
		if err != nil {
			t.Fatal(err)
		}
		if err := encodeLineV2(&b, int64(len(l.events)-i), *e.LeafIndex, e.Record, treelog.EncodeHashes(proof)); err != nil {
			t.Fatal(err)
		}
		ends.add(*e.LeafIndex)
	}
	digest := sha256.Sum256(b.Bytes()[start:])
	m, err := l.prover.SignManifest(manifestText(manifestHeaderV2, cp, int64(len(l.events)), digest[:], "{}", ends))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewEncoder(&b).Encode(exportTrailer{Manifest: m}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Files written before version 3, with a proof per line, still verify, and
// their tampering is still found.
func TestVerifyReadsVersion2Files(t *testing.T) {
	log := newTestLog(t, "acme", 12)
	file := log.writeV2(t)
	v, err := Verify(bytes.NewReader(file), log.vkey)
	if err != nil || v.Manifest != 2 || v.Events != 12 || v.Completeness != Complete {
		t.Fatalf("a version 2 file: %+v, %v", v, err)
	}
	ls := lines(file)
	tampered := bytes.Join(slices.Concat(ls[:3], [][]byte{bytes.Replace(ls[3], []byte("Bench User"), []byte("Bench Usor"), 1)}, ls[4:]), nil)
	var le *LineError
	if _, err := Verify(bytes.NewReader(tampered), log.vkey); !errors.As(err, &le) || le.Line != 4 || !strings.Contains(le.Reason, "field actor differs") {
		t.Fatalf("a changed version 2 line: %v", err)
	}
}

// The encoder asks the tree once for a whole file, whatever its gaps.
func TestProvedEncoderReadsTheTreeOnce(t *testing.T) {
	log := newTestLog(t, "acme", 3000)
	log.prover.tree.reads = 0
	file := log.export(t, domain.Filter{Types: []domain.EventType{"USER_LOGOUT"}})
	if log.prover.tree.reads != 1 {
		t.Fatalf("%d reads of the tree", log.prover.tree.reads)
	}
	if _, err := Verify(bytes.NewReader(file), log.vkey); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkVerify measures the offline verifier over a whole log's export.
func BenchmarkVerify(b *testing.B) {
	log := newTestLog(b, "acme", 50_000)
	file := log.export(b, domain.Filter{})
	b.SetBytes(int64(len(file)))
	rows := 0
	for b.Loop() {
		if _, err := Verify(bytes.NewReader(file), log.vkey); err != nil {
			b.Fatal(err)
		}
		rows += len(log.events)
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// Whatever record the writer writes a line for, the verifier accepts the
// file: a line without its record rebuilds it exactly, and a line with it
// rebuilds from it.
func FuzzVerifyAcceptsWhatIsWritten(f *testing.F) {
	for i := range 3 {
		e := benchEvent(i)
		e.OrgID = "acme"
		f.Add(marshalled(f, e))
	}
	f.Add([]byte(`{"id":"x","orgId":"acme","source":"PLATFORM","type":"USER_UPDATED","occurredAt":"2026-12-03T10:00:00.5+01:00","recordedAt":"2026-12-03T09:00:00Z","actor":{"kind":"USER","id":"u","name":"<a>"},"details":{ "a" : "\u2028" }}`))
	f.Fuzz(func(t *testing.T, record []byte) {
		var e domain.Event
		if json.Unmarshal(record, &e) != nil || e.OrgID != "acme" {
			t.Skip("not an event of acme")
		}
		log := newTestLog(t, "acme", 0)
		e.Record = record
		leaf := int64(0)
		e.LeafIndex = &leaf
		log.prover.tree.add(t, record)
		log.events = append(log.events, e)
		var b bytes.Buffer
		p, err := NewProvedEncoder(context.Background(), &b, log.prover, "acme", domain.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Encode(&e); err != nil {
			t.Skip("the writer refuses it:", err)
		}
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(bytes.NewReader(b.Bytes()), log.vkey); err != nil {
			t.Fatalf("%v\n%s", err, b.Bytes())
		}
	})
}
