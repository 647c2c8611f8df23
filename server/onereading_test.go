package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/ingest"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
)

// nastyTemplate is an acme event as raw text; ID is replaced per send.
const nastyTemplate = `{"id":"ID","orgId":"acme","source":"PLATFORM","type":"USER_LOGOUT","occurredAt":"AT",` +
	`"actor":{"kind":"USER","id":"u1","name":"Ann"},"target":{"kind":"USER","id":"u1"},"details":{"userId":"u1"}}`

// nastyEvents are texts that two readers read differently, each with the
// field its refusal must name.
var nastyEvents = []struct{ name, field, from, to string }{
	{"details key twice, NUL first", "details.userId", `"details":{"userId":"u1"}`, `"details":{"userId":"\u0000","userId":"u1"}`},
	{"details key twice, lone surrogate first", "details.userId", `"details":{"userId":"u1"}`, `"details":{"userId":"\ud800","userId":"u1"}`},
	{"orgId twice", "orgId", `"orgId":"acme"`, `"orgId":"globex","orgId":"acme"`},
	{"actor id twice", "actor.id", `"id":"u1","name"`, `"id":"u1","id":"root","name"`},
	{"target kind twice", "target.kind", `"target":{"kind":"USER"`, `"target":{"kind":"USER","kind":"ROLE"`},
	{"lone surrogate in actor name", "actor.name", `"name":"Ann"`, `"name":"Ann\ud800"`},
}

func nasty(i int, at time.Time) string {
	s := strings.NewReplacer(`"ID"`, `"`+ulid.Make().String()+`"`, `"AT"`, `"`+at.UTC().Format(time.RFC3339)+`"`).Replace(nastyTemplate)
	n := nastyEvents[i]
	if !strings.Contains(s, n.from) {
		panic(n.name)
	}
	return strings.Replace(s, n.from, n.to, 1)
}

// The validator and the projector read the same bytes: each nasty event is
// refused with BAD_USER_INPUT naming its field on every path (NATS ingest
// per event, HTTP and websocket per request or operation), a good event in
// the same NATS batch is stored and readable at once, and nothing of the
// nasty ones is written or quarantined.
func TestNastyJSONIsRefusedOnEveryPath(t *testing.T) {
	env := testenv.Start(t, testenv.WithNATSIngest())
	env.EnableOrg(t, "acme", domain.RegionUS)
	env.EnableOrg(t, "globex", domain.RegionUS)
	at := time.Now().Add(-time.Minute)
	good, _ := json.Marshal(userCreated("globex", at, "good@example.com"))

	// NATS: one batch of every nasty event and a good one of another org.
	var texts []string
	for i := range nastyEvents {
		texts = append(texts, nasty(i, at))
	}
	body := []byte(`{"events":[` + strings.Join(append(texts, string(good)), ",") + `]}`)
	reply, took := natsRecord(t, env.NATSIngest(t), natsx.IngestSubjectPrefix+"PLATFORM", "Bearer "+testenv.ServiceToken(t), body)
	if reply.Error != nil || len(reply.Results) != len(texts)+1 {
		t.Fatalf("NATS reply: %+v", reply)
	}
	for i, n := range nastyEvents {
		r := reply.Results[i]
		if r.Status != ingest.Rejected || r.Code != domain.CodeBadUserInput || !strings.HasPrefix(r.Reason, n.field+": ") {
			t.Errorf("NATS %s: %+v", n.name, r)
		}
		t.Logf("NATS %-40s %s %s: %s", n.name, r.Status, r.Code, r.Reason)
	}
	if r := reply.Results[len(texts)]; r.Status != ingest.Recorded {
		t.Fatalf("NATS, the good event: %+v", r)
	}
	start := time.Now()
	waitRead(t, env, "globex", 1)
	t.Logf("NATS: batch of %d nasty + 1 good answered in %s; the good one readable %s later", len(texts), took, time.Since(start).Round(time.Millisecond))

	// A body that is not one {"events": [...]} object is refused whole.
	for name, b := range map[string]string{
		"events twice":   `{"events":[],"events":[` + string(good) + `]}`,
		"unknown key":    `{"events":[],"Events":[]}`,
		"trailing value": `{"events":[]} {"events":[]}`,
	} {
		reply, _ := natsRecord(t, env.NATSIngest(t), natsx.IngestSubjectPrefix+"PLATFORM", "Bearer "+testenv.ServiceToken(t), []byte(b))
		if reply.Error == nil || reply.Error.Code != domain.CodeBadUserInput {
			t.Errorf("NATS body %s: %+v", name, reply)
		}
	}

	// HTTP: each nasty event in variables, with a good one; the request
	// is refused whole, naming the field.
	for i, n := range nastyEvents {
		goodHTTP, _ := json.Marshal(userCreated("globex", at, fmt.Sprintf("http%d@example.com", i)))
		q, _ := json.Marshal(recordMutation)
		body := `{"query":` + string(q) + `,"variables":{"events":[` + nasty(i, at) + `,` + string(goodHTTP) + `]}}`
		start := time.Now()
		r := env.Post(t, testenv.ServiceToken(t), strings.NewReader(body))
		code := ""
		if len(r.Errors) > 0 {
			code = r.Errors[0].Code()
		}
		if code != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "events[0]") {
			t.Errorf("HTTP %s: status %d, errors %+v, data %s", n.name, r.Status, r.Errors, r.Data)
			continue
		}
		t.Logf("HTTP %-40s %d %s in %s: %s", n.name, r.Status, code, time.Since(start).Round(time.Microsecond), r.Errors[0].Message)
	}

	// HTTP, inline literals in the query text.
	for name, lit := range map[string]string{
		"inline details key twice": `details: {userId: "\u0000", userId: "u1"}`,
		"inline lone surrogate":    `details: {userId: "u1\ud800"}`,
		"inline NUL":               `details: {userId: "u1\u0000"}`,
	} {
		query := fmt.Sprintf(`mutation { recordAuditEvents(events: [{orgId: "acme", type: USER_LOGOUT, source: PLATFORM, occurredAt: %q, actor: {kind: USER, id: "u1"}, %s}]) { results { status reason } } }`,
			at.UTC().Format(time.RFC3339), lit)
		r := env.Do(t, testenv.ServiceToken(t), query, nil)
		var out struct {
			RecordAuditEvents struct{ Results []recordResult }
		}
		_ = json.Unmarshal(r.Data, &out)
		switch {
		case len(r.Errors) > 0 && r.Errors[0].Code() != "":
			t.Logf("HTTP %-40s %d %s: %s", name, r.Status, r.Errors[0].Code(), r.Errors[0].Message)
		case len(out.RecordAuditEvents.Results) == 1 && out.RecordAuditEvents.Results[0].Status == "REJECTED":
			t.Logf("HTTP %-40s REJECTED: %s", name, deref(out.RecordAuditEvents.Results[0].Reason))
		default:
			t.Errorf("HTTP %s: not refused with a code: %+v %s", name, r.Errors, r.Data)
		}
	}

	// Websocket: each nasty event as a graphql-transport-ws operation; an
	// error with a code answers it, and the connection goes on to record a
	// good event.
	ws := connectWS(t, env, testenv.ServiceToken(t))
	q, _ := json.Marshal(recordMutation)
	for i, n := range nastyEvents {
		id := fmt.Sprint(i + 1)
		msg := `{"id":"` + id + `","type":"subscribe","payload":{"query":` + string(q) + `,"variables":{"events":[` + nasty(i, at) + `]}}}`
		start := time.Now()
		ws.send(msg)
		m := ws.read()
		var errs []testenv.GraphQLError
		_ = json.Unmarshal(m.Payload, &errs)
		if m.Type != "error" || m.ID != id || len(errs) != 1 || errs[0].Code() != "BAD_USER_INPUT" {
			t.Errorf("websocket %s: %+v", n.name, m)
			continue
		}
		t.Logf("WS   %-40s error %s in %s: %s", n.name, errs[0].Code(), time.Since(start).Round(time.Microsecond), errs[0].Message)
	}
	goodWS, _ := json.Marshal(userCreated("globex", at, "ws@example.com"))
	msg := `{"id":"ok","type":"subscribe","payload":{"query":` + string(q) + `,"variables":{"events":[` + string(goodWS) + `]}}}`
	ws.send(msg)
	if m := ws.read(); m.Type != "next" || !bytes.Contains(m.Payload, []byte("RECORDED")) {
		t.Fatalf("websocket, the good event after the refused ones: %+v", m)
	}

	// Nothing of the nasty ones was written, nor quarantined.
	env.WaitProjected(t)
	if c := list(t, env, "acme", map[string]any{"types": []string{"USER_LOGOUT"}}, 10, ""); c.TotalCount != 0 {
		t.Fatalf("acme holds %d nasty events", c.TotalCount)
	}
	if n, err := env.EventStore(domain.RegionUS).QuarantineCount(context.Background()); err != nil || n != 0 {
		t.Fatalf("quarantined %d (%v), want 0", n, err)
	}
	waitRead(t, env, "globex", 2)
	env.WaitProjected(t)
	if v := verifyLog(t, env, "acme"); !v.Ok {
		t.Fatalf("acme's log does not verify: %+v", *v.FirstDivergence)
	}
}

// waitRead polls until org's USER_CREATED events number want.
func waitRead(t *testing.T, env *testenv.Env, org string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := list(t, env, org, map[string]any{"types": []string{"USER_CREATED"}}, 10, "")
		if c.TotalCount == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s reads %d events, want %d", org, c.TotalCount, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A message of an org sitting in quarantine means the read model lacks an
// event the stream has: verifyAuditLog says so, naming it, for that org
// only, and /readyz and the metrics count it.
func TestVerifyAuditLogReportsQuarantine(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	env.EnableOrg(t, "globex", domain.RegionUS)
	mustRecord(t, env, []map[string]any{userCreated("acme", time.Now().Add(-time.Minute), "a@example.com")})
	env.WaitProjected(t)
	if v := verifyLog(t, env, "acme"); !v.Ok {
		t.Fatalf("before: %+v", v)
	}

	// What no ingest path lets through, published straight to the stream.
	id := ulid.Make().String()
	raw := strings.NewReplacer(`"ID"`, `"`+id+`"`, `"AT"`, `"`+time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)+`"`).Replace(nastyTemplate)
	raw = strings.Replace(raw, `"details":{"userId":"u1"}`, `"details":{"userId":"\u0000","userId":"u1"}`, 1)
	ctx := context.Background()
	if _, err := env.JetStream().Publish(ctx, "audit.us.acme.PLATFORM.USER_LOGOUT", []byte(raw)); err != nil {
		t.Fatal(err)
	}
	env.WaitProjected(t)
	if n, err := env.EventStore(domain.RegionUS).QuarantineCount(ctx); err != nil || n != 1 {
		t.Fatalf("quarantined %d (%v), want 1", n, err)
	}
	v := verifyLog(t, env, "acme")
	if v.Ok || v.FirstDivergence == nil || v.FirstDivergence.Field != "quarantine" ||
		v.FirstDivergence.EventID == nil || *v.FirstDivergence.EventID != id || !strings.Contains(v.FirstDivergence.Found, "NUL") {
		t.Fatalf("acme with a quarantined message verifies as %+v", v)
	}
	t.Logf("verifyAuditLog(acme): ok=%v field=%s found=%q", v.Ok, v.FirstDivergence.Field, v.FirstDivergence.Found)
	if v := verifyLog(t, env, "globex"); !v.Ok {
		t.Fatalf("globex, which has nothing in quarantine: %+v", v)
	}

	// /readyz and the metrics count it.
	deadline := time.Now().Add(15 * time.Second)
	for {
		body := fetchText(t, env.URL+"/readyz")
		metrics := fetchText(t, env.URL+"/metrics")
		if strings.Contains(body, `"quarantined":1`) &&
			strings.Contains(metrics, `auditlog_projection_quarantined_messages{stream="AUDIT_US"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz %s\nmetrics do not count the quarantined message", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fetchText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// The attack's numbers: 250 nasty events in a 1,000-event NATS batch are
// refused at once and the other org's events are readable promptly; and 250
// such messages published straight to the stream are quarantined without
// holding back the event behind them.
func TestNastyBatchDoesNotHoldOthersBack(t *testing.T) {
	env := testenv.Start(t, testenv.WithNATSIngest())
	env.EnableOrg(t, "acme", domain.RegionUS)
	env.EnableOrg(t, "globex", domain.RegionUS)
	at := time.Now().Add(-time.Minute)
	var texts []string
	for i := range 1000 {
		if i%4 == 0 {
			texts = append(texts, nasty(i/4%2, at)) // details key twice, NUL or lone surrogate first
			continue
		}
		g, _ := json.Marshal(userCreated("globex", at, fmt.Sprintf("g%d@example.com", i)))
		texts = append(texts, string(g))
	}
	reply, took := natsRecord(t, env.NATSIngest(t), natsx.IngestSubjectPrefix+"PLATFORM", "Bearer "+testenv.ServiceToken(t),
		[]byte(`{"events":[`+strings.Join(texts, ",")+`]}`))
	if reply.Error != nil {
		t.Fatalf("NATS reply: %+v", reply.Error)
	}
	refused := 0
	for i, r := range reply.Results {
		if i%4 == 0 && r.Code == domain.CodeBadUserInput {
			refused++
		} else if i%4 != 0 && r.Status != ingest.Recorded {
			t.Fatalf("event %d: %+v", i, r)
		}
	}
	if refused != 250 {
		t.Fatalf("%d of 250 refused", refused)
	}
	start := time.Now()
	waitRead(t, env, "globex", 750)
	t.Logf("NATS: 1,000 events (250 nasty) answered in %s; 250 refused with BAD_USER_INPUT; the 750 good readable %s later",
		took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// Straight to the stream, past ingest.
	ctx := context.Background()
	for i := range 250 {
		raw := strings.NewReplacer(`"ID"`, `"`+ulid.Make().String()+`"`, `"AT"`, `"`+at.UTC().Format(time.RFC3339)+`"`).Replace(nastyTemplate)
		raw = strings.Replace(raw, `"details":{"userId":"u1"}`, []string{`"details":{"userId":"\u0000","userId":"u1"}`, `"details":{"userId":"\ud800","userId":"u1"}`}[i%2], 1)
		if _, err := env.JetStream().PublishAsync("audit.us.acme.PLATFORM.USER_LOGOUT", []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	<-env.JetStream().PublishAsyncComplete()
	start = time.Now()
	mustRecord(t, env, []map[string]any{userCreated("globex", at, "behind@example.com")})
	waitRead(t, env, "globex", 751)
	t.Logf("stream: 250 raw nasty messages, then a globex event readable %s after it was recorded", time.Since(start).Round(time.Millisecond))
	env.WaitProjected(t)
	if n, _ := env.EventStore(domain.RegionUS).QuarantineCount(ctx); n != 250 {
		t.Fatalf("quarantined %d, want 250", n)
	}
	if c := list(t, env, "acme", map[string]any{"types": []string{"USER_LOGOUT"}}, 10, ""); c.TotalCount != 0 {
		t.Fatalf("acme holds %d nasty events", c.TotalCount)
	}
}
