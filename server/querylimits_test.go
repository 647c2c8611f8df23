package server_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/server"
)

// refusalBudget bounds how long a refusal may take: the limits answer in
// milliseconds, and without them these queries take seconds to forever.
// It is loose so the tests hold on a loaded machine.
const refusalBudget = 500 * time.Millisecond

// fragmentChain is the attack of a fragment spreading the previous one
// three times, n times over: 1 KB of text that expands to 3^n fields.
func fragmentChain(op string, n int) string {
	var b strings.Builder
	b.WriteString("fragment F0 on AuditEvent { id }\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "fragment F%d on AuditEvent { ...F%d ...F%d ...F%d }\n", i, i-1, i-1, i-1)
	}
	fmt.Fprintf(&b, op, fmt.Sprintf("...F%d", n))
	return b.String()
}

const chainQuery = `{ auditEvents(first: 1) { edges { node { %s } } } }`

// aliased selects sel n times under distinct aliases.
func aliased(n int, sel string) string {
	var b strings.Builder
	b.WriteString("{ ")
	for i := range n {
		fmt.Fprintf(&b, "a%d: %s ", i, sel)
	}
	b.WriteString("}")
	return b.String()
}

// nested nests n unknown fields: validation would refuse it, but only
// after walking it.
func nested(n int) string {
	return "{ " + strings.Repeat("a { ", n) + "b" + strings.Repeat(" }", n) + " }"
}

// wideQuery is legal and wide: a full page of every field of every event
// type, the catalog and the settings.
func wideQuery() string {
	var b strings.Builder
	b.WriteString(`{ auditLogSettings { enabled region version } auditEventTypes { type category description fields { name type required description } }
  auditEvents(first: 50) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { ` + nodeFields)
	for _, t := range []string{"ApiKeyEvent { apiKeyId apiKeyName keyType }", "ExternalIdpEvent { idpName changedFields }",
		"KeyContactEvent { contactEmail contactName }", "MfaEvent { mfaRequired changedFields }",
		"OrganizationEvent { previousName newName }", "PasswordPolicyEvent { changedFields minLength }",
		"UserEvent { userId userName changedFields }", "UserRoleEvent { role previousRole }",
		"AuditLogEvent { region action exportId format filter }", "PolicyEvent { policyId policyName changes { field before after } }"} {
		b.WriteString(" ... on " + t)
	}
	b.WriteString(" } } } }")
	return b.String()
}

func TestQueryCostLimits(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	admin := testenv.AdminToken(t, "acme")

	tests := []struct {
		name  string
		query string
		code  string // "" when the query must work
	}{
		{"fragment chain of 14", fragmentChain(chainQuery, 14), "COMPLEXITY_LIMIT_EXCEEDED"},
		{"fragment chain of 18", fragmentChain(chainQuery, 18), "COMPLEXITY_LIMIT_EXCEEDED"},
		{"fragment chain of 30", fragmentChain(chainQuery, 30), "COMPLEXITY_LIMIT_EXCEEDED"},
		{"fragment chain of 6 (729 fields)", fragmentChain(chainQuery, 6), ""},
		{"fragment cycle", `fragment A on AuditEvent { id ...B } fragment B on AuditEvent { ...A }` +
			fmt.Sprintf(chainQuery, "...A"), "GRAPHQL_VALIDATION_FAILED"},
		{"wide but legal", wideQuery(), ""},
		{"3,300 aliases of the catalog (137 KiB)", aliased(3300, "auditEventTypes { fields { name } }"), "QUERY_TOO_LARGE"},
		{"1,000 aliases of the catalog", aliased(1000, "auditEventTypes { fields { name } }"), "COMPLEXITY_LIMIT_EXCEEDED"},
		{"60 aliases of the catalog", aliased(60, "auditEventTypes { fields { name } }"), "COMPLEXITY_LIMIT_EXCEEDED"},
		{"5 aliases of the catalog", aliased(5, "auditEventTypes { type fields { name } }"), ""},
		{"101 aliases of a scalar", aliased(101, "auditLogSettings { enabled }"), "QUERY_TOO_LARGE"},
		{"40 aliases of a connection", aliased(40, "auditEvents(first: 100) { edges { node { id } } }"), "COMPLEXITY_LIMIT_EXCEEDED"},
		{"10 aliases of a connection", aliased(10, "auditEvents(first: 20) { edges { node { id } } }"), ""},
		{"one page of 500 rows of every field", `{ auditEvents(first: 500) { edges { node { ` + nodeFields + ` } } } }`, "COMPLEXITY_LIMIT_EXCEEDED"},
		{"4,000 repeats of a field", `{ auditLogSettings { ` + strings.Repeat("enabled ", 4000) + `} }`, "QUERY_TOO_LARGE"},
		{"nesting 13 deep", nested(13), "BAD_USER_INPUT"},
		{"nesting 900 deep", nested(900), "BAD_USER_INPUT"},
		{"1 MiB of query text", `{ auditLogSettings { enabled } }` + strings.Repeat(" ", 1<<20), "QUERY_TOO_LARGE"},
		{"48,000 tokens in 64 KiB", `{ auditLogSettings(` + strings.Repeat("a:1 ", 16_000) + `) { enabled } }`, "QUERY_TOO_LARGE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, caller := range []struct{ name, token string }{{"admin", admin}, {"unauthenticated", ""}} {
				start := time.Now()
				r := env.Do(t, caller.token, tc.query, nil)
				took := time.Since(start)
				t.Logf("%s (%d bytes): %v", caller.name, len(tc.query), took)
				if tc.code == "" {
					if caller.token != "" {
						var out map[string]any
						r.MustData(t, &out)
					} else if len(r.Errors) == 0 || r.Errors[0].Code() != "UNAUTHENTICATED" {
						t.Fatalf("unauthenticated: got %+v", r.Errors)
					}
					continue
				}
				want := tc.code
				if caller.token == "" && len(tc.query) > server.AnonymousMaxRequestBytes-1024 {
					// Not read at all: a caller without a token may send
					// only a small body.
					want = "UNAUTHENTICATED"
				}
				if got := r.ErrorCode(t); got != want || r.Errors[0].Message == "" {
					t.Fatalf("%s: got %+v, want code %s with a message", caller.name, r.Errors, want)
				}
				if took > refusalBudget {
					t.Errorf("%s: refused in %v, want under %v", caller.name, took, refusalBudget)
				}
			}
		})
	}
}

// TestQueryCostAttacksDoNotStarveOthers: ten attackers at once leave an
// ordinary query its ordinary latency.
func TestQueryCostAttacksDoNotStarveOthers(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	admin := testenv.AdminToken(t, "acme")
	attack := fragmentChain(chainQuery, 30)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if code := env.Do(t, "", attack, nil).ErrorCode(t); code != "COMPLEXITY_LIMIT_EXCEEDED" {
					t.Errorf("attack answered %s", code)
					return
				}
			}
		})
	}
	defer wg.Wait()
	defer close(stop)
	var worst time.Duration
	for range 20 {
		start := time.Now()
		var out struct{ AuditLogSettings struct{ Enabled bool } }
		env.Do(t, admin, `{ auditLogSettings { enabled } }`, nil).MustData(t, &out)
		worst = max(worst, time.Since(start))
	}
	t.Logf("slowest of 20 ordinary queries under 10 attackers: %v", worst)
	if worst > refusalBudget {
		t.Errorf("an ordinary query took %v under attack", worst)
	}
}

// TestQueryCostLimitsOverWebsocket: operations over graphql-transport-ws,
// subscriptions included, meet the same limits.
func TestQueryCostLimitsOverWebsocket(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	w := connectWS(t, env, testenv.AdminToken(t, "acme"))

	tests := []struct {
		name  string
		query string
		code  string
	}{
		{"subscription with a fragment chain of 18",
			fragmentChain(`subscription { auditEventRecorded { %s } }`, 18), "COMPLEXITY_LIMIT_EXCEEDED"},
		{"query with a fragment chain of 30", fragmentChain(chainQuery, 30), "COMPLEXITY_LIMIT_EXCEEDED"},
		{"1,000 aliases of the catalog", aliased(1000, "auditEventTypes { fields { name } }"), "COMPLEXITY_LIMIT_EXCEEDED"},
		{"101 aliases of a scalar", aliased(101, "auditLogSettings { enabled }"), "QUERY_TOO_LARGE"},
		{"nesting 13 deep", nested(13), "BAD_USER_INPUT"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprint(i)
			start := time.Now()
			w.subscribe(id, tc.query, nil)
			got := w.errorCode(id)
			took := time.Since(start)
			t.Logf("%v", took)
			if got != tc.code {
				t.Fatalf("got %s, want %s", got, tc.code)
			}
			if took > refusalBudget {
				t.Errorf("refused in %v, want under %v", took, refusalBudget)
			}
		})
	}
	// The connection still serves a legal subscription.
	w.subscribe("live", liveSubscription, nil)
	waitActive(t, env, 1)
}

func TestResponseSizeLimit(t *testing.T) {
	env := testenv.Start(t, func(c *server.Config) { c.MaxResponseBytes = 4 << 10 })
	admin := testenv.AdminToken(t, "acme")
	if r := env.Do(t, admin, `{ auditEventTypes { type description fields { name description } } }`, nil); r.ErrorCode(t) != "RESPONSE_TOO_LARGE" {
		t.Fatalf("large answer: %+v", r.Errors)
	}
	var out map[string]any
	env.Do(t, admin, `{ auditEventTypes { type } }`, nil).MustData(t, &out)
}
