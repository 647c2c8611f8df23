package query

import (
	"errors"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/auditlog/auditlog/domain"
)

func TestParseCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"   \t ", ""},
		{"type:USER_CREATED", "type:USER_CREATED"},
		{"type:user_created", "type:USER_CREATED"},
		{"type:USER_*", "type:USER_*"},
		{"type:USER_**", "type:USER_*"},
		{"source:insight_idr category:mfa actor.kind:api_key", "source:INSIGHT_IDR category:MFA actor.kind:API_KEY"},
		{"type:USER_CREATED actor:*@example.com -source:PLATFORM occurred:>=2026-11-01",
			"type:USER_CREATED actor:*@example.com -source:PLATFORM occurred:>=2026-11-01"},
		{"a AND b", "a b"},
		{"a and b", "a and b"},
		{"a OR b c", "a OR b c"},
		{"(a OR b) c", "(a OR b) c"},
		{"a OR (b OR c)", "a OR b OR c"},
		{"((a b) c)", "a b c"},
		{"NOT a", "-a"},
		{"NOT NOT a", "a"},
		{"--a", "a"},
		{"-(a b)", "-(a b)"},
		{"NOT (a OR b)", "-(a OR b)"},
		{`"two words"`, `"two words"`},
		{`"say \"hi\""`, `"say \"hi\""`},
		{`"OR"`, `"OR"`},
		{`"-x"`, `"-x"`},
		{`"a:b"`, `"a:b"`},
		{`foo\*`, `foo*`},
		{`a\ b`, `"a b"`},
		{"12:30", `"12:30"`},
		{"grace@example.com", "grace@example.com"},
		{`actor.name:"Grace Hopper"`, `actor.name:"Grace Hopper"`},
		{`actor.name:"Grace*"`, `actor.name:Grace*`},
		{`actor.name:Gr\*ce`, `actor.name:Gr\*ce`},
		{`actor.name:"a\\b"`, `actor.name:a\\b`},
		{`target:"(x)"`, `target:"(x)"`},
		{"actor.email:*", "actor.email:*"},
		{"target.kind:POLICY target.id:p-1 target.name:Prod", "target.kind:POLICY target.id:p-1 target.name:Prod"},
		{"id:01J0000000000000000000000 request:r-1 agent:curl/*", "id:01J0000000000000000000000 request:r-1 agent:curl/*"},
		{"details.policyId:p-*", "details.policyId:p-*"},
		{"details.changes.0.field:x", "details.changes.0.field:x"},
		{"occurred:2026-11-01", "occurred:>=2026-11-01 occurred:<2026-11-02"},
		{"occurred:2026-11-01..2026-11-30", "occurred:>=2026-11-01 occurred:<2026-12-01"},
		{"occurred:2026-11-01..*", "occurred:>=2026-11-01"},
		{"occurred:*..2026-11-30", "occurred:<2026-12-01"},
		{"occurred:>2026-11-01", "occurred:>=2026-11-02"},
		{"occurred:<=2026-11-01", "occurred:<2026-11-02"},
		{"occurred:<2026-11-01", "occurred:<2026-11-01"},
		{"occurred:>2026-11-01T10:00:00+02:00", "occurred:>2026-11-01T08:00:00Z"},
		{"occurred:<=2026-11-01T00:00:00Z", "occurred:<=2026-11-01T00:00:00Z"},
		{"occurred:2026-11-01T10:00:00.1234567Z", "occurred:2026-11-01T10:00:00.123456Z"},
		{"occurred:2026-11-01T10:00:00Z..2026-11-01T11:00:00Z", "occurred:>=2026-11-01T10:00:00Z occurred:<=2026-11-01T11:00:00Z"},
		{"-occurred:2026-11-01", "-(occurred:>=2026-11-01 occurred:<2026-11-02)"},
		{"x OR occurred:2026-11-01", "x OR occurred:>=2026-11-01 occurred:<2026-11-02"},
		{"ip:10.0.0.1", "ip:10.0.0.1"},
		{"ip:10.1.2.3/8", "ip:10.0.0.0/8"},
		{"ip:2001:db8::/32", "ip:2001:db8::/32"},
		{"ip:2001:DB8:0::1", "ip:2001:db8::1"},
		{"ip:::ffff:10.0.0.1", "ip:::ffff:10.0.0.1"},
		{"a\u00a0b", "a\u00a0b"}, // only ASCII spaces separate terms
	}
	for _, tt := range tests {
		q, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got := q.String(); got != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
		again, err := Parse(q.String())
		if err != nil || !reflect.DeepEqual(again, q) {
			t.Errorf("Parse(%q) = %#v, %v; want %#v", q.String(), again, err, q)
		}
	}
}

func TestParseTree(t *testing.T) {
	q, err := Parse(`type:USER_* OR -(actor:"a b" c)`)
	if err != nil {
		t.Fatal(err)
	}
	want := Or{
		Term{Field: "type", Value: Pattern{"USER_", ""}},
		Not{Node: And{Term{Field: "actor", Value: Pattern{"a b"}}, Text("c")}},
	}
	if !reflect.DeepEqual(q.Root(), Node(want)) {
		t.Errorf("tree = %#v, want %#v", q.Root(), want)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in     string
		column int
		says   string
	}{
		{"type:USER_CREATED actr:x", 19, `unknown field "actr"; fields are type, category`},
		{"details:x", 1, `unknown field "details"`},
		{"type:NOPE", 6, `unknown event type "NOPE"`},
		{"type:NOPE_*", 6, `no event type matches "NOPE_*"`},
		{"source:SLACK", 8, `unknown source "SLACK"; sources are PLATFORM`},
		{"category:X", 10, `unknown category "X"`},
		{"actor.kind:ROBOT", 12, `unknown actor kind "ROBOT"`},
		{"details.nope:x", 1, `no event type has a details field "nope"`},
		{"details..x:y", 1, "empty key"},
		{"details.a.b.c.d.e.f.g.h.i:y", 1, "nested at most 8"},
		{"occurred:2026-13-01", 10, `"2026-13-01" is not a date or time`},
		{`occurred:"2026-13-01"`, 11, `is not a date or time`},
		{"occurred:>=yesterday", 12, `"yesterday" is not a date or time`},
		{"occurred:2026-11-01..nope", 22, `"nope" is not a date`},
		{"occurred:*..*", 10, "at least one end"},
		{"occurred:2026-11-30..2026-11-01", 10, "ends before it starts"},
		{"occurred:2026-11-01*", 10, "is not a date"},
		{"occurred:<=9999-12-31", 10, "outside the years 0000 to 9999"},
		{"occurred:0000-01-01T00:00:00+01:00", 10, "outside the years"},
		{"ip:10.0.0.0/33", 4, "is not an IP address or a CIDR network"},
		{"ip:fe80::1%eth0", 4, "is not an IP address"},
		{"ip:10.*", 4, "is not an IP address"},
		{"(a", 1, "this ( is never closed"},
		{"a (b (c)", 3, "this ( is never closed"},
		{"a)", 2, "a ) without its ("},
		{"()", 1, "empty parentheses"},
		{"a OR", 3, "OR must be followed by a term"},
		{"a OR OR b", 3, "OR must be followed by a term"},
		{"OR a", 1, "OR must follow a term"},
		{"a AND", 3, "AND must be followed by a term"},
		{"AND a", 1, "AND must follow a term"},
		{"a (OR b)", 4, "OR must follow a term"},
		{"NOT", 1, "NOT must be followed by a term"},
		{"a -", 3, "- must be followed at once"},
		{"- a", 1, "- must be followed at once"},
		{"-)", 1, "- must be followed at once"},
		{"-AND", 1, "- must be followed by a term"},
		{`a "b`, 3, "the quote is never closed"},
		{`"a"b`, 4, "expected a space after the closing quote"},
		{`actor:"a"b`, 10, "expected a space after the closing quote"},
		{`ab"c"`, 3, "a quote inside a word"},
		{`ab\`, 3, "ends with a backslash"},
		{`""`, 1, "an empty phrase"},
		{"type:", 6, "type: needs a value"},
		{`actor:""`, 7, "actor: needs a value"},
		{"é actr:x", 3, `unknown field "actr"`},
		{"a\x00", 2, "a NUL character"},
		{"a\xff", 2, "invalid UTF-8"},
		{strings.Repeat("(", MaxDepth+1) + "a" + strings.Repeat(")", MaxDepth+1), MaxDepth + 1, "nested more than 16 deep"},
		{strings.Repeat("NOT ", MaxDepth+1) + "a", 4*MaxDepth + 1, "nested more than 16 deep"},
		{strings.Repeat("a ", MaxTerms) + "b", 2*MaxTerms + 1, "at most 64 terms"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		var de *domain.Error
		if !errors.As(err, &de) || de.Code != domain.CodeBadUserInput || de.Field != "query" {
			t.Errorf("Parse(%q) = %v, want a BAD_USER_INPUT error on query", tt.in, err)
			continue
		}
		if prefix := "at column " + strconv.Itoa(tt.column) + ": "; !strings.HasPrefix(de.Message, prefix) || !strings.Contains(de.Message, tt.says) {
			t.Errorf("Parse(%q) = %q, want %q…%q", tt.in, de.Message, prefix, tt.says)
		}
	}
}

func TestParseLength(t *testing.T) {
	if _, err := Parse(strings.Repeat("a", MaxLen)); err != nil {
		t.Errorf("a query of %d bytes: %v", MaxLen, err)
	}
	_, err := Parse(strings.Repeat("a", MaxLen+1))
	if domain.CodeOf(err) != domain.CodeBadUserInput || !strings.Contains(err.Error(), "at most 1024") {
		t.Errorf("a query of %d bytes: %v, want BAD_USER_INPUT naming the limit", MaxLen+1, err)
	}
}

func TestFromFilter(t *testing.T) {
	_, err := FromFilter(domain.Filter{Query: "actr:x"})
	var de *domain.Error
	if !errors.As(err, &de) || de.Field != "filter.query" || de.Code != domain.CodeBadUserInput || !strings.Contains(de.Message, "at column 1") {
		t.Errorf("FromFilter = %v, want BAD_USER_INPUT on filter.query with the column", err)
	}
	if err := ValidateFilter(domain.Filter{Sources: []domain.Source{"X"}, Query: "ok"}); domain.CodeOf(err) != domain.CodeBadUserInput {
		t.Errorf("ValidateFilter with a bad source = %v, want BAD_USER_INPUT", err)
	}
	if err := ValidateFilter(domain.Filter{Query: "type:USER_*"}); err != nil {
		t.Errorf("ValidateFilter with a good query: %v", err)
	}
}

// The address guard must accept only what Go reads as an address (Match) and
// Postgres casts to inet (SQL); readmodel's tests check the Postgres side.
func TestIPPattern(t *testing.T) {
	re := regexp.MustCompile(ipPattern)
	good := []string{"10.0.0.1", "0.0.0.0", "255.255.255.255", "::", "::1", "1::", "2001:db8::1", "1:2:3:4:5:6:7:8",
		"1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "::ffff:10.0.0.1", "::1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "1::5:6:1.2.3.4", "FE80::A"}
	bad := []string{"", "1.2.3", "1.2.3.256", "01.2.3.4", "1:2:3:4:5:6:7:8:9", ":::", "1::2::3", "fe80::1%eth0",
		"12345::", "1.2.3.4/8", " 10.0.0.1", "g::1", "1:2:3:4:5:6:7:1.2.3.4"}
	for _, s := range good {
		if !re.MatchString(s) {
			t.Errorf("%q is an address the pattern refuses", s)
		}
	}
	for _, s := range bad {
		if re.MatchString(s) {
			t.Errorf("%q is not an address, but the pattern accepts it", s)
		}
	}
}
