package ndjson

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/treelog"
)

// slowLine is the line encodeLine writes, the format's definition.
func slowLine(t testing.TB, n, leaf int64, record []byte, proof []tlog.Hash) ([]byte, error) {
	var b bytes.Buffer
	err := encodeLine(&b, n, leaf, record, treelog.EncodeHashes(proof))
	return b.Bytes(), err
}

func benchEvent(i int) domain.Event {
	at := time.Date(2026, 12, 3, 9, 0, 0, 123_456_000, time.UTC).Add(time.Duration(i) * time.Millisecond)
	return domain.Event{
		ID: fmt.Sprintf("01JEXPORT%016d", i), OrgID: "acme", Source: domain.SourcePlatform, Type: "USER_UPDATED", OccurredAt: at,
		RecordedAt: at, Actor: domain.Actor{Kind: domain.ActorUser, ID: fmt.Sprintf("u%d", i%1000), Name: "Bench User", Email: "bench@example.com"},
		Target:  &domain.Target{Kind: "USER", ID: fmt.Sprintf("t%d", i)},
		Details: json.RawMessage(fmt.Sprintf(`{"userId":"t%d","changedFields":["email"]}`, i)),
	}
}

func marshalled(t testing.TB, e domain.Event) []byte {
	b, err := json.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The fast line equals encodeLine's byte for byte for every record ingest
// writes (json.Marshal of an Event), whatever its fields hold; a record it
// does not handle is left to encodeLine.
func TestAppendLineEqualsEncodeLine(t *testing.T) {
	proof := []tlog.Hash{{1, 2, 3}, {0xff, 0xfe}, {}}
	canonical := func(change func(*domain.Event)) []byte {
		e := benchEvent(7)
		change(&e)
		return marshalled(t, e)
	}
	tests := []struct {
		name   string
		record []byte
		fast   bool // the fast path must take it
	}{
		{"bench event", canonical(func(*domain.Event) {}), true},
		{"no target, no details", canonical(func(e *domain.Event) { e.Target, e.Details = nil, json.RawMessage(`{}`) }), true},
		{"every optional field", canonical(func(e *domain.Event) {
			e.IPAddress, e.UserAgent, e.RequestID = "10.0.0.1", "Mozilla/5.0 (X11; Linux x86_64)", "req-1"
			e.Target.Name = "Grace Hopper"
		}), true},
		{"non-ASCII names", canonical(func(e *domain.Event) { e.Actor.Name, e.Target.Name = "José Ñúñez 日本", "Zoë" }), true},
		{"an actor with no name or email", canonical(func(e *domain.Event) { e.Actor = domain.Actor{Kind: domain.ActorUser} }), true},
		{"an unknown type", canonical(func(e *domain.Event) { e.Type = "NOT_IN_CATALOG" }), true},
		{"another catalog type", canonical(func(e *domain.Event) { e.Type = "USER_LOGOUT" }), true},
		{"nested details", canonical(func(e *domain.Event) {
			e.Details = json.RawMessage(`{"a":[1,2.5e3,{"b":null,"c":true}],"d":"x y","e":"caf\u00e9"}`)
		}), true},
		{"whole seconds", canonical(func(e *domain.Event) { e.OccurredAt = e.OccurredAt.Truncate(time.Second) }), true},
		{"a non-UTC time", canonical(func(e *domain.Event) { e.RecordedAt = e.RecordedAt.In(time.FixedZone("X", 3600)) }), true},
		{"HTML in a name", canonical(func(e *domain.Event) { e.Actor.Name = "<script>&" }), false},
		{"HTML in details", canonical(func(e *domain.Event) { e.Details = json.RawMessage(`{"x":"a<b"}`) }), false},
		{"U+2028 in a name", canonical(func(e *domain.Event) { e.Actor.Name = "a\u2028b" }), false},
		{"U+2029 in details", canonical(func(e *domain.Event) { e.Details = json.RawMessage("{\"x\":\"a\u2029b\"}") }), false},
		{"a quote and a newline", canonical(func(e *domain.Event) { e.Actor.Name = "\"a\"\nb\\" }), false},
		{"invalid UTF-8", canonical(func(e *domain.Event) { e.Actor.Name = "a\xffb" }), false},
		{"details null", canonical(func(e *domain.Event) { e.Details = nil }), false},
		{"details an array", canonical(func(e *domain.Event) { e.Details = json.RawMessage(`[1]`) }), false},
		{"hand-written: spaces in details", []byte(`{"id":"x","orgId":"acme","source":"PLATFORM","type":"USER_UPDATED","occurredAt":"2026-12-03T09:00:00Z","recordedAt":"2026-12-03T09:00:00Z","actor":{"kind":"USER","id":"u"},"details":{ "a" : [ 1 , 2 ] }}`), true},
		{"hand-written: trailing zeros in a time", []byte(`{"id":"x","orgId":"acme","source":"PLATFORM","type":"USER_UPDATED","occurredAt":"2026-12-03T09:00:00.100Z","recordedAt":"2026-12-03T10:00:00.5+01:00","actor":{"kind":"USER","id":"u"},"details":{}}`), true},
		{"hand-written: an empty omitempty field", []byte(`{"id":"x","orgId":"acme","source":"PLATFORM","type":"USER_UPDATED","occurredAt":"2026-12-03T09:00:00Z","recordedAt":"2026-12-03T09:00:00Z","actor":{"kind":"USER","id":"u","name":""},"ipAddress":"","details":{}}`), false},
		{"hand-written: an unknown field", []byte(`{"id":"x","orgId":"acme","extra":1,"source":"PLATFORM","type":"USER_UPDATED","occurredAt":"2026-12-03T09:00:00Z","recordedAt":"2026-12-03T09:00:00Z","actor":{"kind":"USER","id":"u"},"details":{}}`), false},
		{"hand-written: a field twice", []byte(`{"id":"x","orgId":"acme","source":"PLATFORM","type":"USER_UPDATED","occurredAt":"2026-12-03T09:00:00Z","recordedAt":"2026-12-03T09:00:00Z","actor":{"kind":"USER","id":"u"},"details":{},"details":{"a":1}}`), false},
		{"hand-written: target null", []byte(`{"id":"x","orgId":"acme","source":"PLATFORM","type":"USER_UPDATED","occurredAt":"2026-12-03T09:00:00Z","recordedAt":"2026-12-03T09:00:00Z","actor":{"kind":"USER","id":"u"},"target":null,"details":{}}`), false},
		{"hand-written: a key in upper case", []byte(`{"ID":"x","orgId":"acme","source":"PLATFORM","type":"USER_UPDATED","occurredAt":"2026-12-03T09:00:00Z","recordedAt":"2026-12-03T09:00:00Z","actor":{"kind":"USER","id":"u"},"details":{}}`), false},
		{"hand-written: a bad time", []byte(`{"id":"x","orgId":"acme","source":"PLATFORM","type":"USER_UPDATED","occurredAt":"2026-02-30T09:00:00Z","recordedAt":"2026-12-03T09:00:00Z","actor":{"kind":"USER","id":"u"},"details":{}}`), false},
		{"hand-written: invalid details", []byte(`{"id":"x","orgId":"acme","source":"PLATFORM","type":"USER_UPDATED","occurredAt":"2026-12-03T09:00:00Z","recordedAt":"2026-12-03T09:00:00Z","actor":{"kind":"USER","id":"u"},"details":{"a":}}`), false},
		{"not JSON", []byte(`{"id":`), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkAppendLine(t, tc.record, proof, tc.fast)
		})
	}
	// No proof at all (a tree of one leaf).
	checkAppendLine(t, canonical(func(*domain.Event) {}), nil, true)
}

func checkAppendLine(t *testing.T, record []byte, proof []tlog.Hash, mustBeFast bool) {
	t.Helper()
	var compact bytes.Buffer
	prefix := []byte("earlier lines\n")
	got, ok := appendLine(bytes.Clone(prefix), &compact, 42, 1234, record, proof)
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("appendLine changed what dst held: %q", got)
	}
	got = got[len(prefix):]
	if mustBeFast && !ok {
		t.Fatalf("the fast path refused %s", record)
	}
	if !ok {
		if len(got) != 0 {
			t.Fatalf("refused, but appended %q", got)
		}
		return
	}
	want, err := slowLine(t, 42, 1234, record, proof)
	if err != nil {
		t.Fatalf("the fast path took %s, which encodeLine refuses: %v", record, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("lines differ for %s\nfast: %s\nslow: %s", record, got, want)
	}
}

// Any record the fast path takes, it writes as encodeLine does.
func FuzzAppendLine(f *testing.F) {
	for i := range 3 {
		f.Add(marshalled(f, benchEvent(i)))
	}
	e := benchEvent(9)
	e.IPAddress, e.UserAgent, e.RequestID, e.Target = "::1", "ua", "r", nil
	e.Details = json.RawMessage(`{"k":[{"x":"é"}],"n":-1.5}`)
	f.Add(marshalled(f, e))
	f.Fuzz(func(t *testing.T, record []byte) {
		checkAppendLine(t, record, []tlog.Hash{{9}}, false)
	})
}

// memProver proves against an in-memory tree, to measure the encoder alone.
type memProver struct{ tree *countingHashes }

func (m memProver) Checkpoint(context.Context, string) (string, treelog.Checkpoint, error) {
	return "checkpoint\n", treelog.Checkpoint{Origin: "auditlog/us/acme", Size: int64(len(m.tree.leaves))}, nil
}
func (m memProver) TreeHashes(context.Context, string) (tlog.HashReader, error) { return m.tree, nil }
func (m memProver) SignManifest(text string) (string, error)                    { return text, nil }

// BenchmarkNDJSONProved measures the NDJSON encoder with proofs (lines,
// proofs, digest), the tree in memory, over events like auditbench's.
func BenchmarkNDJSONProved(b *testing.B) {
	const size = 50_000
	tree := &countingHashes{}
	evs := make([]domain.Event, size)
	for i := range evs {
		evs[i] = benchEvent(i)
		evs[i].Record = marshalled(b, evs[i])
		leaf := int64(i)
		evs[i].LeafIndex = &leaf
		h, err := tlog.StoredHashes(leaf, evs[i].Record, tree)
		if err != nil {
			b.Fatal(err)
		}
		tree.stored = append(tree.stored, h...)
		tree.leaves = append(tree.leaves, leaf)
	}
	b.ResetTimer()
	rows := 0
	for b.Loop() {
		p, err := NewProvedEncoder(context.Background(), io.Discard, memProver{tree}, "acme", domain.Filter{})
		if err != nil {
			b.Fatal(err)
		}
		// Newest first, as exports read.
		for i := size - 1; i >= 0; i-- {
			if err := p.Encode(&evs[i]); err != nil {
				b.Fatal(err)
			}
		}
		if err := p.Flush(); err != nil {
			b.Fatal(err)
		}
		rows += size
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}
