package readmodel

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/ingest"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/projector"
)

const fuzzEvent = `{"id":"01JDQ8Z6V1K9E3M4N5P6Q7R8S9","orgId":"acme","source":"PLATFORM","type":"USER_LOGOUT",` +
	`"occurredAt":"2026-11-01T00:00:00Z","actor":{"kind":"USER","id":"u1","name":"Ann","email":"ann@acme.example"},` +
	`"target":{"kind":"USER","id":"u1","name":"Ann"},"userAgent":"curl","details":{"userId":"u1"}}`

const fuzzPolicy = `{"id":"01JDQ8Z6V1K9E3M4N5P6Q7R8SA","orgId":"acme","source":"PLATFORM","type":"POLICY_UPDATED",` +
	`"occurredAt":"2026-11-01T00:00:00Z","actor":{"kind":"SYSTEM","id":"s"},"target":{"kind":"POLICY","id":"p1"},` +
	`"details":{"policyId":"p1","changes":[{"field":"mode","before":{"a":[1,"\ud83d\ude00"]},"after":"x"}]}}`

// Whatever ingest accepts, the projector reads the same way and can store:
// ingest's reading (DecodeEvent, then Validate) and the projector's decode
// of the record ingest would append agree on every column, and nothing in
// the record is what Postgres refuses (NUL, a lone surrogate, invalid
// UTF-8) or reads otherwise (a key twice, which jsonb resolves its own way).
func FuzzIngestedEventIsProjected(f *testing.F) {
	for _, s := range []string{
		fuzzEvent, fuzzPolicy,
		strings.Replace(fuzzEvent, `"details":{"userId":"u1"}`, `"details":{"userId":"\u0000","userId":"u1"}`, 1),
		strings.Replace(fuzzEvent, `"details":{"userId":"u1"}`, `"details":{"userId":"\ud800","userId":"u1"}`, 1),
		strings.Replace(fuzzEvent, `"orgId":"acme"`, `"orgId":"globex","orgId":"acme"`, 1),
		strings.Replace(fuzzEvent, `"orgId":"acme"`, `"orgId":"acme","ORGID":"globex"`, 1),
		strings.Replace(fuzzEvent, `"name":"Ann"`, `"name":"Ann\ud800"`, 1),
		strings.Replace(fuzzEvent, `"name":"Ann"`, `"name":"A\u0000"`, 1),
		strings.Replace(fuzzPolicy, `"before":{"a"`, `"before":{"a":1,"a"`, 1),
		strings.Replace(fuzzPolicy, `"x"}]`, `"x\udfff"}]`, 1),
		strings.Replace(fuzzPolicy, `"after":"x"`, `"after":1e400`, 1),
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := domain.DecodeEvent(raw)
		if err != nil {
			if domain.CodeOf(err) != domain.CodeBadUserInput {
				t.Fatalf("refused with %s, want BAD_USER_INPUT: %v", domain.CodeOf(err), err)
			}
			return
		}
		// As Recorder.record prepares an event.
		e.RecordedAt, e.OccurredAt = now, e.OccurredAt.UTC()
		if e.Validate(now) != nil {
			return
		}
		data, err := ingest.Encode(&e)
		if err != nil {
			t.Fatalf("ingest cannot encode what it accepted: %v", err)
		}
		if err := domain.CheckJSON("", data); err != nil {
			t.Fatalf("the record of an accepted event reads two ways: %v\n%s", err, data)
		}
		m := projector.Message{Subject: natsx.AuditSubject(domain.RegionUS, &e), Data: data, Seq: 7}
		got, ok := (&EventStore{}).decode(&m).([]any)
		if !ok {
			t.Fatalf("the projector refuses what ingest accepted: %v\n%s", (&EventStore{}).decode(&m), data)
		}
		want := EventRow(&e, 7)
		for i := range want {
			switch i {
			case colRecord:
				if !bytes.Equal(got[i].([]byte), data) {
					t.Fatalf("record column is not the stored message")
				}
				continue
			case 17: // details: the same JSON value, whatever the spacing
				if !sameValue(t, want[i].(string), got[i].(string)) {
					t.Fatalf("details: ingest read %s, the projector %s", want[i], got[i])
				}
				if err := domain.CheckJSON("details", []byte(got[i].(string))); err != nil {
					t.Fatalf("details column would be read otherwise by jsonb: %v", err)
				}
				continue
			}
			if wt, ok := want[i].(time.Time); ok {
				if !wt.Equal(got[i].(time.Time)) {
					t.Fatalf("column %d: ingest read %v, the projector %v", i, wt, got[i])
				}
				continue
			}
			if !reflect.DeepEqual(want[i], got[i]) {
				t.Fatalf("column %d: ingest read %#v, the projector %#v", i, want[i], got[i])
			}
			storableText(t, i, got[i])
		}
	})
}

func sameValue(t *testing.T, a, b string) bool {
	var va, vb any
	if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(b), &vb) != nil {
		t.Fatalf("details not JSON: %q / %q", a, b)
	}
	return reflect.DeepEqual(va, vb)
}

// storableText fails for a text column Postgres would refuse.
func storableText(t *testing.T, col int, v any) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case *string:
		if x == nil {
			return
		}
		s = *x
	default:
		return
	}
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		t.Fatalf("column %d holds %q, which a text column refuses", col, s)
	}
}
