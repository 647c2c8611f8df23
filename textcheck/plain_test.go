package textcheck

import (
	"encoding/json"
	"reflect"
	"testing"
)

var plainCases = []string{
	`{"userId":"t1","changedFields":["email"]}`, `{}`, ` { "a" : [1, {"b":"}"}] , "c":null } `, `{"\u0061":1}`,
	`{"a":"x\"y"}`, `"plain"`, `"esc\u00e9"`, `"tab` + "\t" + `"`, `"x\\y"`, `""`, `"Zoë"`, "\"\xff\"", `[1]`, `1`,
}

// TestPlainAsDecoded checks PlainMembers and PlainString against
// encoding/json wherever they answer.
func TestPlainAsDecoded(t *testing.T) {
	for _, raw := range plainCases {
		samePlain(t, []byte(raw))
	}
}

func samePlain(t *testing.T, raw []byte) {
	t.Helper()
	if s, ok := PlainString(raw); ok {
		var want string
		if err := json.Unmarshal(raw, &want); err != nil || s != want {
			t.Fatalf("PlainString(%q) = %q, encoding/json %q (%v)", raw, s, want, err)
		}
	}
	if JSON("", raw) != nil {
		return // PlainMembers reads only what JSON accepted
	}
	got := map[string]json.RawMessage{}
	if PlainMembers(raw, func(k string, v []byte) { got[k] = v }) {
		want := map[string]json.RawMessage{}
		if err := json.Unmarshal(raw, &want); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("PlainMembers(%q) = %q, encoding/json %q (%v)", raw, got, want, err)
		}
	}
}

func FuzzPlainAsDecoded(f *testing.F) {
	for _, raw := range plainCases {
		f.Add([]byte(raw))
	}
	f.Fuzz(samePlain)
}
