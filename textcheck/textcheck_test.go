package textcheck

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// Every text two readers could read differently is refused, naming where.
func TestJSON(t *testing.T) {
	tests := []struct {
		name, raw string
		wantField string // "-": accepted
		wantText  string
	}{
		{"plain object", `{"a":1,"b":[true,false,null,"x",-1.5e3]}`, "-", ""},
		{"surrogate pair", `{"a":"\ud83d\ude00"}`, "-", ""},
		{"escaped backslash then u", `{"a":"\\u0000 is text"}`, "-", ""},
		{"same key in sibling objects", `{"a":{"k":1},"b":{"k":2}}`, "-", ""},
		{"duplicate top-level key", `{"orgId":"acme","orgId":"globex"}`, "orgId", "twice"},
		{"duplicate key spelled with an escape", `{"orgId":"acme","\u006frgId":"globex"}`, "orgId", "twice"},
		{"duplicate in nested object", `{"details":{"userId":"a","userId":"b"}}`, "details.userId", "twice"},
		{"duplicate deep in an array", `{"d":{"changes":[{"field":"f"},{"field":"f","field":"g"}]}}`, "d.changes[1].field", "twice"},
		{"NUL in first of two values", `{"details":{"userId":"\u0000","userId":"ok"}}`, "details.userId", "NUL"},
		{"lone high surrogate", `{"a":{"b":"x\ud800"}}`, "a.b", "surrogate"},
		{"high surrogate then non-low", `{"a":"\ud800\u0041"}`, "a", "surrogate"},
		{"lone low surrogate", `{"a":"\udc00"}`, "a", "surrogate"},
		{"NUL in a key", `{"a\u0000":1}`, "", "key that contains a NUL"},
		{"surrogate in a key", `{"x":{"\ud800":1}}`, "x", "key that contains a lone"},
		{"raw control character", "{\"a\":\"x\ty\"}", "a", "control character"},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", "", "UTF-8"},
		{"trailing data", `{"a":1} {"a":2}`, "", "not valid JSON"},
		{"unterminated", `{"a":"x`, "a", "not valid JSON"},
		{"bad number", `{"a":01}`, "", "not valid JSON"},
		{"too deep", strings.Repeat("[", 70) + strings.Repeat("]", 70), "", "nested deeper"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := JSON("", []byte(tc.raw))
			if tc.wantField == "-" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("got %v, want an *Error", err)
			}
			if !strings.HasPrefix(de.Field, tc.wantField) || !strings.Contains(de.Message, tc.wantText) {
				t.Fatalf("got field %q message %q, want field under %q saying %q", de.Field, de.Message, tc.wantField, tc.wantText)
			}
		})
	}
}

// JSONRequest leaves NUL to the field checks but refuses keys twice
// and lone surrogates, naming where.
func TestJSONRequest(t *testing.T) {
	if err := JSONRequest("", []byte(`{"a":"\u0000"}`)); err != nil {
		t.Fatalf("NUL refused by the request check: %v", err)
	}
	for raw, want := range map[string]string{
		`{"variables":{"events":[{"details":{"k":1,"k":2}}]}}`:   "variables.events[0].details.k: ",
		`{"variables":{"events":[{"actor":{"name":"\ud800"}}]}}`: "variables.events[0].actor.name: ",
	} {
		err := JSONRequest("", []byte(raw))
		if !errors.As(err, new(*Error)) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: got %v", raw, err)
		}
	}
}

func TestGraphQLQuery(t *testing.T) {
	for q, ok := range map[string]bool{
		`{ a(s: "x\ud83d\ude00") }`: true,
		`{ a(s: "\\ud800") }`:       true, // an escaped backslash, then text
		`{ a(s: "x\ud800") }`:       false,
		`{ a(s: "x\udc00") }`:       false,
		`{ a(s: "x\ud800\u0041") }`: false,
	} {
		if err := GraphQLQuery(q); (err == nil) != ok {
			t.Errorf("GraphQLQuery(%s) = %v, want ok=%v", q, err, ok)
		}
	}
}

// Whatever JSON accepts, encoding/json accepts, and it reads the same
// keys the scanner counted: a text that passes has one reading.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{
		`{"orgId":"acme","actor":{"kind":"USER","id":"u1"},"details":{"userId":"u1"}}`, `{"a":1,"a":2}`, `{"a":"\u0000"}`, `{"a":"\ud800"}`, `{"\u0061":1,"a":2}`,
		`[1,{"b":[{"c":null}]}]`, `"\ud83d\ude00"`, `-0.5e-3`, `{"a":"\\ud800"}`, `{"a":"\ud800\udc00"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		err := JSON("", raw)
		if err == nil && !json.Valid(raw) {
			t.Fatalf("JSON accepted what encoding/json refuses: %q", raw)
		}
		if err != nil && !errors.As(err, new(*Error)) {
			t.Fatalf("%T for %q", err, raw)
		}
		if err != nil || !json.Valid(raw) {
			return
		}
		// Accepted: Go's reading keeps every key the text has (none was
		// given twice, as Go compares keys), so it holds all the text says.
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		if got, want := countKeys(v), keysInText(raw); got != want {
			t.Fatalf("Go reads %d keys of the %d in %q", got, want, raw)
		}
	})
}

func countKeys(v any) int {
	n := 0
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			n += 1 + countKeys(e)
		}
	case []any:
		for _, e := range x {
			n += countKeys(e)
		}
	}
	return n
}

// keysInText counts the keys of every object in raw as written, twice-given
// ones twice, from encoding/json's token stream.
func keysInText(raw []byte) int {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	type level struct{ object, wantKey bool }
	var stack []level
	valueDone := func() {
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].wantKey = true
		}
	}
	n := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return n
		}
		if l := len(stack); l > 0 && stack[l-1].object && stack[l-1].wantKey && tok != json.Delim('}') {
			n++
			stack[l-1].wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, level{object: true, wantKey: true})
		case json.Delim('['):
			stack = append(stack, level{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
}

func TestBody(t *testing.T) {
	tests := []struct {
		body string
		ok   bool
	}{
		{`{"query":"{ a }"}`, true},
		{`{"v":"\ud83d\ude00 and \u0000"}`, true}, // NUL is judged per field, with its name
		{"{\"v\":\"\xff\"}", false},
		{`{"v":"\ud800"}`, false},
		{`{"v":"\\ud800"}`, true}, // an escaped backslash, then text
	}
	for _, tc := range tests {
		err := Body([]byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("Body(%q) = %v, want ok=%v", tc.body, err, tc.ok)
		}
		if err != nil && !errors.As(err, new(*Error)) {
			t.Errorf("Body(%q) gave %T", tc.body, err)
		}
	}
}
