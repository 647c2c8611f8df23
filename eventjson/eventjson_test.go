package eventjson

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
)

func sample() domain.Event {
	at := time.Date(2026, 12, 3, 16, 20, 7, 123456789, time.UTC)
	return domain.Event{
		ID: "01JDQ7ZC3M7R3V9B5ZC8V1N9QK", OrgID: "acme", Source: domain.SourcePlatform, Type: "USER_UPDATED",
		OccurredAt: at, RecordedAt: at.Add(time.Second),
		Actor:   domain.Actor{Kind: domain.ActorUser, ID: "u1", Name: "Zoë Example", Email: "zoe@example.com"},
		Target:  &domain.Target{Kind: "USER", ID: "t1"},
		Details: json.RawMessage(`{"userId":"t1","changedFields":["email"]}`),
	}
}

// TestAppendIsMarshal checks Append against json.Marshal on events in the
// fast path's form and on every way out of it.
func TestAppendIsMarshal(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	cases := []struct {
		name   string
		change func(*domain.Event)
	}{
		{"common form", func(*domain.Event) {}},
		{"no target, optional fields", func(e *domain.Event) {
			e.Target, e.IPAddress, e.UserAgent, e.RequestID = nil, "10.1.2.3", "curl/8", "req-1"
		}},
		{"target name, no actor name", func(e *domain.Event) { e.Target.Name, e.Actor.Name, e.Actor.Email = "Bob", "", "" }},
		{"nil details", func(e *domain.Event) { e.Details = nil }},
		{"empty details", func(e *domain.Event) { e.Details = json.RawMessage{} }},
		{"invalid details", func(e *domain.Event) { e.Details = json.RawMessage(`{"a":`) }},
		{"spaced details", func(e *domain.Event) { e.Details = json.RawMessage(" {\"a\" : [1, 2],\n\"b\":null} ") }},
		{"HTML in details", func(e *domain.Event) { e.Details = json.RawMessage(`{"a":"<b>&"}`) }},
		{"U+2028 in details", func(e *domain.Event) { e.Details = json.RawMessage("{\"a\":\"x\u2028y\"}") }},
		{"escaped details", func(e *domain.Event) { e.Details = json.RawMessage(`{"a":"q\"\\\u00e9"}`) }},
		{"quote in a string", func(e *domain.Event) { e.Actor.Name = `say "hi"` }},
		{"HTML in a string", func(e *domain.Event) { e.UserAgent = "<script>&" }},
		{"control in a string", func(e *domain.Event) { e.Target.ID = "a\tb\x01" }},
		{"invalid UTF-8", func(e *domain.Event) { e.Actor.ID = "a\xffb" }},
		{"U+2029 in a string", func(e *domain.Event) { e.RequestID = "a\u2029b" }},
		{"not UTC", func(e *domain.Event) { e.OccurredAt = e.OccurredAt.In(paris) }},
		{"zero time", func(e *domain.Event) { e.RecordedAt = time.Time{} }},
		{"year 10000", func(e *domain.Event) { e.OccurredAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"whole second", func(e *domain.Event) { e.OccurredAt = e.OccurredAt.Truncate(time.Second) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := sample()
			c.change(&e)
			want, wantErr := json.Marshal(&e)
			got, err := Append([]byte("prefix"), &e)
			if (err != nil) != (wantErr != nil) {
				t.Fatalf("error %v, json.Marshal's %v", err, wantErr)
			}
			if err != nil {
				if string(got) != "prefix" {
					t.Fatalf("dst changed on error: %q", got)
				}
				return
			}
			if !bytes.Equal(got, append([]byte("prefix"), want...)) {
				t.Fatalf("\n got %s\nwant prefix%s", got, want)
			}
		})
	}
}

// TestDecodeIsUnmarshal checks Decode against json.Unmarshal on texts in
// the fast path's form and on every way out of it.
func TestDecodeIsUnmarshal(t *testing.T) {
	common, _ := json.Marshal(ptr(sample()))
	cases := []struct {
		name string
		data string
	}{
		{"json.Marshal of an event", string(common)},
		{"other order and spacing", ` { "details" : {"a": [1, {"b": "}"}]}, "type":"USER_UPDATED", "id": "x",
			"actor": {"id": "u", "kind": "USER"}, "occurredAt": "2026-01-02T03:04:05+01:00", "orgId": "o" } `},
		{"no details", `{"id":"x","orgId":"o"}`},
		{"null details", `{"id":"x","details":null}`},
		{"string details", `{"id":"x","details":"d"}`},
		{"null target", `{"id":"x","target":null}`},
		{"escaped string", `{"id":"x\u0041","orgId":"o\"q"}`},
		{"escaped key", `{"i\u0064":"x"}`},
		{"key in another case", `{"ID":"x","OrgId":"o"}`},
		{"unknown key", `{"id":"x","extra":{"a":1}}`},
		{"duplicate key", `{"id":"x","id":"y"}`},
		{"duplicate actor key", `{"actor":{"id":"a","id":"b"}}`},
		{"number for a string", `{"id":1}`},
		{"bad time", `{"occurredAt":"yesterday"}`},
		{"time with no zone", `{"occurredAt":"2026-01-02T03:04:05"}`},
		{"invalid UTF-8", "{\"id\":\"a\xffb\"}"},
		{"control character", "{\"id\":\"a\x01b\"}"},
		{"trailing garbage", `{"id":"x"} x`},
		{"trailing object", `{"id":"x"}{}`},
		{"unterminated", `{"id":"x"`},
		{"invalid details", `{"details":{"a":}}`},
		{"details then more", `{"details":{"a":1},"id":"x"}`},
		{"empty object", `{}`},
		{"not an object", `[1]`},
		{"empty", ``},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { sameAsUnmarshal(t, []byte(c.data)) })
	}
}

func ptr[T any](v T) *T { return &v }

func sameAsUnmarshal(t *testing.T, data []byte) {
	t.Helper()
	var want, got domain.Event
	wantErr := json.Unmarshal(data, &want)
	err := Decode(data, &got)
	if (err != nil) != (wantErr != nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("%s: error %v, json.Unmarshal's %v", data, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", data, got, want)
	}
}

// TestRoundTrips runs random events, many with characters that force the
// slow paths, through both directions.
func TestRoundTrips(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"a", "Zoë", "<", "&", `"`, `\`, "\t", "\u2028", "é", "\xff", " ", "0"}
	word := func() string {
		var b []byte
		for range rng.IntN(4) {
			b = append(b, pieces[rng.IntN(len(pieces))]...)
		}
		return string(b)
	}
	for range 5000 {
		e := sample()
		e.ID, e.OrgID, e.Actor.Name, e.Actor.Email, e.UserAgent = word(), word(), word(), word(), word()
		if rng.IntN(3) == 0 {
			e.Target = nil
		} else {
			e.Target.Name = word()
		}
		d, _ := json.Marshal(map[string]string{word(): word()})
		e.Details = d
		e.OccurredAt = time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).UTC()
		want, wantErr := json.Marshal(&e)
		got, err := Marshal(&e)
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("Marshal %+v:\n got %s %v\nwant %s %v", e, got, err, want, wantErr)
		}
		if err == nil {
			sameAsUnmarshal(t, want)
		}
	}
}

// TestDecodeEventIsDomain checks that DecodeEvent answers as
// domain.DecodeEvent does, events and errors alike.
func TestDecodeEventIsDomain(t *testing.T) {
	common, _ := json.Marshal(ptr(sample()))
	for _, data := range []string{
		string(common),
		`{"id":"x","orgId":"o","actor":{"kind":"USER","id":"u"},"details":{}}`,
		`{"id":"x","orgid":"o"}`,
		`{"id":"x","id":"y"}`,
		`{"id":"x","actor":{"kind":"USER","ID":"u"}}`,
		`{"id":"x","target":{"kind":"USER","id":"u","extra":1}}`,
		`{"id":"x\u0000"}`,
		`{"id":1}`,
		`{"details":{"a":"\ud800"}}`,
		`[]`,
	} {
		want, wantErr := domain.DecodeEvent([]byte(data))
		got, err := DecodeEvent([]byte(data))
		if (err != nil) != (wantErr != nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Fatalf("%s: error %v, domain's %v", data, err, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s:\n got %+v\nwant %+v", data, got, want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	common, _ := json.Marshal(ptr(sample()))
	f.Add(common)
	f.Add([]byte(`{"id":"x","details":{"a":[1,"]"]}}`))
	f.Fuzz(func(t *testing.T, data []byte) { sameAsUnmarshal(t, data) })
}

func BenchmarkMarshal(b *testing.B) {
	e := sample()
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(&e)
		}
	})
	b.Run("eventjson", func(b *testing.B) {
		for b.Loop() {
			_, _ = Marshal(&e)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	data, _ := json.Marshal(ptr(sample()))
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			var e domain.Event
			_ = json.Unmarshal(data, &e)
		}
	})
	b.Run("eventjson", func(b *testing.B) {
		for b.Loop() {
			var e domain.Event
			_ = Decode(data, &e)
		}
	})
}

// TestSearchTextIsDomain checks SearchText against domain.SearchText on
// details in the fast path's form and on every way out of it.
func TestSearchTextIsDomain(t *testing.T) {
	cases := []struct {
		name    string
		details string
	}{
		{"common form", `{"userId":"T1","changedFields":["Email","Name"]}`},
		{"keys out of order, nesting", `{"z":{"b":[1,2.5,-0.0,1e21,123456789,1e-7],"a":true},"a":false,"m":null}`},
		{"numbers", `[0, -1, 3.14159, 1e6, 1E+6, 100000, 1234567.0, 5e-324, 1.7976931348623157e308, 0.000001, 0.0000001]`},
		{"out of range number", `{"a":1e400,"b":"x"}`},
		{"spacing", " {\n\t\"a\" : [ \"x\" , { } , [ ] ] } "},
		{"escaped string", `{"a":"x\"y\u00e9"}`},
		{"escaped key", `{"\u0061":"x"}`},
		{"duplicate key", `{"a":"x","a":"y"}`},
		{"not an object", `"Just Text"`},
		{"null", `null`},
		{"empty", ``},
		{"invalid", `{"a":`},
		{"invalid UTF-8", "{\"a\":\"x\xffy\"}"},
		{"unicode to lower", `{"a":"ÉCOLE Straße İ"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := sample()
			e.Details = json.RawMessage(c.details)
			if c.details == "" {
				e.Details = nil
			}
			if got, want := SearchText(&e), domain.SearchText(&e); got != want {
				t.Fatalf("\n got %q\nwant %q", got, want)
			}
		})
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		f := math.Float64frombits(rng.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		if rng.IntN(2) == 0 {
			f = float64(rng.Int64N(1e12)) / math.Pow(10, float64(rng.IntN(15)))
		}
		e := sample()
		e.Details, _ = json.Marshal(map[string]any{"n": f})
		if got, want := SearchText(&e), domain.SearchText(&e); got != want {
			t.Fatalf("%s:\n got %q\nwant %q", e.Details, got, want)
		}
	}
}

func FuzzSearchText(f *testing.F) {
	f.Add([]byte(`{"userId":"T1","changedFields":["Email"],"n":[1.5,true,null]}`))
	f.Fuzz(func(t *testing.T, details []byte) {
		e := sample()
		e.Details = details
		if got, want := SearchText(&e), domain.SearchText(&e); got != want {
			t.Fatalf("%q:\n got %q\nwant %q", details, got, want)
		}
	})
}

func BenchmarkSearchText(b *testing.B) {
	e := sample()
	b.Run("domain", func(b *testing.B) {
		for b.Loop() {
			_ = domain.SearchText(&e)
		}
	})
	b.Run("eventjson", func(b *testing.B) {
		for b.Loop() {
			_ = SearchText(&e)
		}
	})
}
