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
func slowLine(n, leaf int64, record []byte, org string) ([]byte, error) {
	var b bytes.Buffer
	err := encodeLine(&b, n, leaf, record, org)
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
// writes (json.Marshal of an Event), whatever its fields hold, and leaves
// out the records a verifier rebuilds from the line; a record it does not
// handle is left to encodeLine.
func TestAppendLineEqualsEncodeLine(t *testing.T) {
	canonical := func(change func(*domain.Event)) []byte {
		e := benchEvent(7)
		change(&e)
		return marshalled(t, e)
	}
	// fast: the fast path must take it; rebuilt: the line must leave the
	// record out, and keep it otherwise.
	tests := []struct {
		name          string
		record        []byte
		fast, rebuilt bool
	}{
		{"bench event", canonical(func(*domain.Event) {}), true, true},
		{"no target, no details", canonical(func(e *domain.Event) { e.Target, e.Details = nil, json.RawMessage(`{}`) }), true, true},
		{"every optional field", canonical(func(e *domain.Event) {
			e.IPAddress, e.UserAgent, e.RequestID = "10.0.0.1", "Mozilla/5.0 (X11; Linux x86_64)", "req-1"
			e.Target.Name = "Grace Hopper"
		}), true, true},
		{"non-ASCII names", canonical(func(e *domain.Event) { e.Actor.Name, e.Target.Name = "José Ñúñez 日本", "Zoë" }), true, true},
		{"an actor with no name or email", canonical(func(e *domain.Event) { e.Actor = domain.Actor{Kind: domain.ActorUser} }), true, true},
		{"an unknown type", canonical(func(e *domain.Event) { e.Type = "NOT_IN_CATALOG" }), true, true},
		{"another catalog type", canonical(func(e *domain.Event) { e.Type = "USER_LOGOUT" }), true, true},
		{"nested details", canonical(func(e *domain.Event) {
			e.Details = json.RawMessage(`{"a":[1,2.5e3,{"b":null,"c":true}],"d":"x y","e":"caf\u00e9"}`)
		}), true, true},
		{"whole seconds", canonical(func(e *domain.Event) { e.OccurredAt = e.OccurredAt.Truncate(time.Second) }), true, true},
		{"a non-UTC time", canonical(func(e *domain.Event) { e.RecordedAt = e.RecordedAt.In(time.FixedZone("X", 3600)) }), true, false},
		{"another organization's", canonical(func(e *domain.Event) { e.OrgID = "globex" }), true, false},
		{"HTML in a name", canonical(func(e *domain.Event) { e.Actor.Name = "<script>&" }), false, false},
		{"HTML in details", canonical(func(e *domain.Event) { e.Details = json.RawMessage(`{"x":"a<b"}`) }), false, false},
		{"U+2028 in a name", canonical(func(e *domain.Event) { e.Actor.Name = "a\u2028b" }), false, false},
		{"U+2029 in details", canonical(func(e *domain.Event) { e.Details = json.RawMessage("{\"x\":\"a\u2029b\"}") }), false, false},
		{"a quote and a newline", canonical(func(e *domain.Event) { e.Actor.Name = "\"a\"\nb\\" }), false, false},
		{"invalid UTF-8", canonical(func(e *domain.Event) { e.Actor.Name = "a\xffb" }), false, false},
		{"details null", canonical(func(e *domain.Event) { e.Details = nil }), false, false},
		{"details an array", canonical(func(e *domain.Event) { e.Details = json.RawMessage(`[1]`) }), false, false},
		{"hand-written: spaces in details", []byte(`{"id":"x","orgId":"acme","source":"PLATFORM","type":"USER_UPDATED","occurredAt":"2026-12-03T09:00:00Z","recordedAt":"2026-12-03T09:00:00Z","actor":{"kind":"USER","id":"u"},"details":{ "a" : [ 1 , 2 ] }}`), true, false},
		{"hand-written: trailing zeros in a time", []byte(`{"id":"x","orgId":"acme","source":"PLATFORM","type":"USER_UPDATED","occurredAt":"2026-12-03T09:00:00.100Z","recordedAt":"2026-12-03T10:00:00.5+01:00","actor":{"kind":"USER","id":"u"},"details":{}}`), true, false},
		{"hand-written: an empty omitempty field", []byte(`{"id":"x","orgId":"acme","source":"PLATFORM","type":"USER_UPDATED","occurredAt":"2026-12-03T09:00:00Z","recordedAt":"2026-12-03T09:00:00Z","actor":{"kind":"USER","id":"u","name":""},"ipAddress":"","details":{}}`), false, false},
		{"hand-written: an unknown field", []byte(`{"id":"x","orgId":"acme","extra":1,"source":"PLATFORM","type":"USER_UPDATED","occurredAt":"2026-12-03T09:00:00Z","recordedAt":"2026-12-03T09:00:00Z","actor":{"kind":"USER","id":"u"},"details":{}}`), false, false},
		{"hand-written: a field twice", []byte(`{"id":"x","orgId":"acme","source":"PLATFORM","type":"USER_UPDATED","occurredAt":"2026-12-03T09:00:00Z","recordedAt":"2026-12-03T09:00:00Z","actor":{"kind":"USER","id":"u"},"details":{},"details":{"a":1}}`), false, false},
		{"hand-written: target null", []byte(`{"id":"x","orgId":"acme","source":"PLATFORM","type":"USER_UPDATED","occurredAt":"2026-12-03T09:00:00Z","recordedAt":"2026-12-03T09:00:00Z","actor":{"kind":"USER","id":"u"},"target":null,"details":{}}`), false, false},
		{"hand-written: a key in upper case", []byte(`{"ID":"x","orgId":"acme","source":"PLATFORM","type":"USER_UPDATED","occurredAt":"2026-12-03T09:00:00Z","recordedAt":"2026-12-03T09:00:00Z","actor":{"kind":"USER","id":"u"},"details":{}}`), false, false},
		{"hand-written: a bad time", []byte(`{"id":"x","orgId":"acme","source":"PLATFORM","type":"USER_UPDATED","occurredAt":"2026-02-30T09:00:00Z","recordedAt":"2026-12-03T09:00:00Z","actor":{"kind":"USER","id":"u"},"details":{}}`), false, false},
		{"hand-written: invalid details", []byte(`{"id":"x","orgId":"acme","source":"PLATFORM","type":"USER_UPDATED","occurredAt":"2026-12-03T09:00:00Z","recordedAt":"2026-12-03T09:00:00Z","actor":{"kind":"USER","id":"u"},"details":{"a":}}`), false, false},
		{"not JSON", []byte(`{"id":`), false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line := checkAppendLine(t, tc.record, tc.fast)
			if has := bytes.Contains(line, []byte(`"record":`)); tc.fast && has == tc.rebuilt {
				t.Fatalf("record in the line: %v, want %v\n%s", has, !tc.rebuilt, line)
			}
		})
	}
}

// checkAppendLine checks appendLine against encodeLine for record, and
// returns the line.
func checkAppendLine(t *testing.T, record []byte, mustBeFast bool) []byte {
	t.Helper()
	var compact bytes.Buffer
	prefix := []byte("earlier lines\n")
	got, ok := appendLine(bytes.Clone(prefix), &compact, 42, 1234, record, "acme")
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
		return nil
	}
	want, err := slowLine(42, 1234, record, "acme")
	if err != nil {
		t.Fatalf("the fast path took %s, which encodeLine refuses: %v", record, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("lines differ for %s\nfast: %s\nslow: %s", record, got, want)
	}
	return got
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
		checkAppendLine(t, record, false)
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
