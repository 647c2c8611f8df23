package query

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auditlog/auditlog/domain"
)

// Each node matches in memory and renders SQL with one meaning. In SQL a
// comparison with a NULL column is NULL, which WHERE, AND and OR treat as
// false; negation is IS NOT TRUE, so NULL negates to true just as an absent
// value, which matches nothing, does in memory.

func (a And) match(e *event) bool {
	for _, n := range a {
		if !n.match(e) {
			return false
		}
	}
	return true
}

func (a And) sql(arg func(any) string) string { return join(a, arg, " AND ") }

func (o Or) match(e *event) bool {
	for _, n := range o {
		if n.match(e) {
			return true
		}
	}
	return false
}

func (o Or) sql(arg func(any) string) string { return join(o, arg, " OR ") }

func join(nodes []Node, arg func(any) string, op string) string {
	parts := make([]string, len(nodes))
	for i, n := range nodes {
		parts[i] = n.sql(arg)
	}
	return "(" + strings.Join(parts, op) + ")"
}

func (n Not) match(e *event) bool { return !n.Node.match(e) }

func (n Not) sql(arg func(any) string) string { return "(" + n.Node.sql(arg) + ") IS NOT TRUE" }

// match is domain.Filter.Search's test.
func (t Text) match(e *event) bool {
	term := strings.ToLower(string(t))
	return slices.Contains(domain.TypesMatching(term), e.Type) || strings.Contains(e.searchText(), term)
}

// sql is the read model's free-text condition, word for word: a substring
// of the stored lower-cased search text (trigram-indexed), or a type whose
// name or description holds it.
func (t Text) sql(arg func(any) string) string {
	term := strings.ToLower(string(t))
	text := "search_text"
	if utf8.RuneCountInString(string(t)) < 3 {
		// No trigram fits in one or two characters: the trigram index
		// would read every entry. Hide it from the planner so it walks the
		// org's rows in list order and stops at the page.
		text = "(search_text || '')"
	}
	cond := text + " LIKE " + arg("%"+escapeLike(term)+"%")
	if types := domain.TypesMatching(term); len(types) > 0 {
		return "(" + cond + " OR type = ANY(" + arg(strings2(types)) + "))"
	}
	return cond
}

// escapeLike makes every character of s literal in a LIKE pattern whose
// escape character is the default backslash.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func (t Term) def() fieldDef {
	if t.Field == "details" {
		f, _ := lookup("details.")
		return f
	}
	f, _ := lookup(t.Field)
	return f
}

func (t Term) match(e *event) bool {
	f := t.def()
	switch {
	case f.kind == kindDetails:
		v, ok := e.detail(t.Path)
		return ok && t.Value.matches(v)
	case t.Field == "category":
		return slices.Contains(categoryTypes(f.values(t.Value)), string(e.Type))
	case f.kind == kindEnum:
		return slices.Contains(f.values(t.Value), f.get(e.Event)[0])
	}
	for _, v := range f.get(e.Event) {
		if t.Value.matches(v) {
			return true
		}
	}
	return false
}

// sql compares columns with = or = ANY where the value has no wildcard, so
// the indexes on type, source, actor and target serve it, and with LIKE
// where it has.
func (t Term) sql(arg func(any) string) string {
	f := t.def()
	if f.kind == kindEnum {
		vals := f.values(t.Value)
		if t.Field == "category" {
			vals = categoryTypes(vals)
		}
		if len(vals) == 1 {
			return f.cols[0] + " = " + arg(vals[0])
		}
		return f.cols[0] + " = ANY(" + arg(vals) + ")"
	}
	var op, v string
	if lit, ok := t.Value.literal(); ok {
		op, v = " = ", arg(lit)
	} else {
		op, v = " LIKE ", arg(t.Value.like())
	}
	if f.kind == kindDetails {
		// The keys are arguments too; ->> gives a scalar's text, and
		// objects and arrays, which match nothing in memory, are left out.
		node := "details"
		for _, k := range t.Path[:len(t.Path)-1] {
			node += " -> " + arg(k) + "::text"
		}
		var key string
		if len(t.Path) == 1 && slices.Contains(IndexedDetails(), t.Path[0]) {
			// A literal from the fixed list above, never the user's text.
			key = "'" + t.Path[0] + "'"
		} else {
			key = arg(t.Path[len(t.Path)-1]) + "::text"
		}
		return "(jsonb_typeof(" + node + " -> " + key + ") IN ('string', 'number', 'boolean') AND " +
			node + " ->> " + key + op + v + ")"
	}
	conds := make([]string, len(f.cols))
	for i, c := range f.cols {
		conds[i] = c + op + v
	}
	if len(conds) == 1 {
		return conds[0]
	}
	return "(" + strings.Join(conds, " OR ") + ")"
}

func (o Occurred) match(e *event) bool {
	// Postgres keeps microseconds, and pgx drops the rest.
	at := e.OccurredAt.Truncate(time.Microsecond)
	switch o.Op {
	case ">=":
		return !at.Before(o.At)
	case ">":
		return at.After(o.At)
	case "<":
		return at.Before(o.At)
	case "<=":
		return !at.After(o.At)
	}
	return at.Equal(o.At)
}

func (o Occurred) sql(arg func(any) string) string { return "occurred_at " + o.Op + " " + arg(o.At) }

func (ip IP) match(e *event) bool {
	if !e.ipParsed {
		e.ipParsed = true
		if ipText.MatchString(e.IPAddress) {
			a, err := netip.ParseAddr(e.IPAddress)
			e.ip, e.ipOK = a, err == nil
		}
	}
	return e.ipOK && ip.Prefix.Contains(e.ip)
}

// sql compares the read model's indexed inet expression (InetExpr) with
// the network, so the organization's GiST index answers it; see InetExpr.
func (ip IP) sql(arg func(any) string) string {
	return InetExpr() + " <<= " + arg(ip.Prefix.String()) + "::inet"
}

// InetExpr is the IP address as inet, or NULL where the stored text is not
// shaped like an address: ingest stores nothing else, but the projector
// keeps what the stream holds, and one bad cast would fail the whole
// search. CASE, unlike AND, decides the order. The read model indexes this
// very expression (region migration 010), and Postgres uses an expression
// index only for the same text, so the pattern is a literal here and the
// migration must spell it identically (readmodel's tests check both).
func InetExpr() string {
	return "(CASE WHEN ip_address ~ '" + ipPattern + "' THEN ip_address::inet END)"
}

// IndexedDetails are the payload keys the read model indexes per
// organization, (org_id, details->>key, occurred_at): userId names a
// user in 18 types of the catalog and userEmail in 8, more than any other
// key, and both are what an investigator follows a person by. A qualifier
// on one of them names the key as a literal so the expression index fits.
func IndexedDetails() []string { return []string{"userId", "userEmail"} }

// ipPattern accepts the textual IPv4 and IPv6 addresses (no zone) that Go
// and Postgres both read the same way; written with only the regular
// expression syntax the two share.
var ipPattern = func() string {
	const (
		h  = `[0-9A-Fa-f]{1,4}`
		o  = `(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])`
		v4 = o + `\.` + o + `\.` + o + `\.` + o
	)
	units := func(n int) string { // n hex groups, colon-separated
		if n == 1 {
			return h
		}
		return "(" + h + ":){" + strconv.Itoa(n-1) + "}" + h
	}
	upTo := func(n int) string { // 0 to n hex groups
		if n == 0 {
			return ""
		}
		return "(" + h + "(:" + h + "){0," + strconv.Itoa(n-1) + "})?"
	}
	alts := []string{v4, units(8), "(" + h + ":){6}" + v4}
	for k := 0; k <= 7; k++ { // k groups before ::
		left := ""
		if k > 0 {
			left = units(k)
		}
		alts = append(alts, left+"::"+upTo(7-k))
		if k <= 5 {
			tail := "(" + h + ":){0," + strconv.Itoa(5-k) + "}" + v4
			if k == 5 {
				tail = v4
			}
			alts = append(alts, left+"::"+tail)
		}
	}
	return "^(" + strings.Join(alts, "|") + ")$"
}()

var ipText = regexp.MustCompile(ipPattern)

// detail is the text Postgres's ->> gives for the scalar at path in the
// event's details, and false where there is none.
func (e *event) detail(path []string) (string, bool) {
	if !e.decoded {
		e.decoded = true
		dec := json.NewDecoder(bytes.NewReader(e.Details))
		dec.UseNumber()
		if dec.Decode(&e.details) != nil {
			e.details = nil
		}
	}
	v := e.details
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		if v, ok = m[k]; !ok {
			return "", false
		}
	}
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case json.Number:
		return numericText(string(v)), true
	}
	return "", false
}

// numericText is a JSON number as Postgres prints it from jsonb: its
// numeric value in plain notation, with as many decimals as the literal
// had less its exponent, and no negative zero. details.count:3 then means
// what it says whether read in memory or in SQL.
func numericText(lit string) string {
	neg := strings.HasPrefix(lit, "-")
	lit = strings.TrimPrefix(lit, "-")
	mant, exp := lit, 0
	if i := strings.IndexAny(lit, "eE"); i >= 0 {
		mant = lit[:i]
		n, err := strconv.Atoi(strings.TrimPrefix(lit[i+1:], "+"))
		if err != nil {
			return lit
		}
		exp = n
	}
	whole, frac, _ := strings.Cut(mant, ".")
	digits := whole + frac
	shift := exp - len(frac) // value = digits × 10^shift
	scale := max(0, -shift)
	if shift > 0 {
		digits += strings.Repeat("0", shift)
	}
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	intPart := strings.TrimLeft(digits[:len(digits)-scale], "0")
	if intPart == "" {
		intPart = "0"
	}
	out := intPart
	if scale > 0 {
		out += "." + digits[len(digits)-scale:]
	}
	if neg && strings.Trim(digits, "0") != "" {
		out = "-" + out
	}
	return out
}
