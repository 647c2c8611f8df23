package textcheck

import (
	"reflect"
	"strings"
	"testing"
)

// pathCases reach every error the scanner names a path in, at depth.
var pathCases = []string{
	`{"orgId":"acme","actor":{"kind":"USER","id":"u1"},"details":{"userId":"u1"}}`,
	`{"a":1,"a":2}`, `{"a":"\u0000"}`, `{"a":"\ud800"}`, `{"\u0061":1,"a":2}`, `{"a\u0000":1}`,
	`{"x":{"\ud800":1}}`, `[1,{"b":[{"c":null},{"c":"\u0000"}]}]`, `{"d":{"changes":[{"field":"f"},{"field":"f","field":"g"}]}}`,
	`{"v":{"e":[{"a":1},{"a":[1,2,{"k":"x` + "\t" + `"}]}]}}`, `{"a":[1,2,}`, `{"a":{"b":01}}`, `{"a":[tru]}`,
	`{"a":"\x"}`, `{"a":"\u12"}`, `{"a" 1}`, `{"a":1 "b":2}`, `{1:2}`, `[1 2]`, `{"a":[1,2]`, `{"a":"x`,
	`{"a":{"b":{"c":"\ud800\u0041"}}}`, `{"e":[{"k":"v","k\u0000":1}]}`, `"\ud83d\ude00"`, `-0.5e-3`, `-`, `1e`, `1.`,
	strings.Repeat(`{"a":`, 70) + "1" + strings.Repeat("}", 70), strings.Repeat("[", 70) + strings.Repeat("]", 70),
	`{"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k1":0}`,
}

// TestPathsAsBefore checks that the scanner, which builds a path only for
// an error, answers every text as it did when it built one per value.
func TestPathsAsBefore(t *testing.T) {
	for _, raw := range pathCases {
		for _, field := range []string{"", "details", "variables"} {
			samePaths(t, field, []byte(raw))
		}
	}
}

func samePaths(t *testing.T, field string, raw []byte) {
	t.Helper()
	for _, nul := range []bool{true, false} {
		got, want := checkJSON(field, raw, nul), refCheckJSON(field, raw, nul)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q (field %q, nul %v):\n got %v\nwant %v", raw, field, nul, got, want)
		}
	}
}

func FuzzPathsAsBefore(f *testing.F) {
	for _, raw := range pathCases {
		f.Add([]byte(raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { samePaths(t, "details", raw) })
}

func BenchmarkJSONRequest(b *testing.B) {
	event := `{"id":"01JDQ7ZC3M7R3V9B5ZC8V1N9QK","orgId":"bench","type":"USER_UPDATED","source":"PLATFORM","occurredAt":"2026-12-03T16:20:07Z",` +
		`"actor":{"kind":"USER","id":"u1","name":"Bench User","email":"bench@example.com"},"target":{"kind":"USER","id":"t1"},"details":{"userId":"t1","changedFields":["email"]}}`
	body := []byte(`{"query":"mutation($e: [AuditEventInput!]!) { recordAuditEvents(events: $e) { results { status } } }","variables":{"e":[` +
		strings.TrimSuffix(strings.Repeat(event+",", 500), ",") + `]}}`)
	b.SetBytes(int64(len(body)))
	b.Run("now", func(b *testing.B) {
		for b.Loop() {
			_ = checkJSON("", body, false)
		}
	})
	b.Run("before", func(b *testing.B) {
		for b.Loop() {
			_ = refCheckJSON("", body, false)
		}
	})
}
