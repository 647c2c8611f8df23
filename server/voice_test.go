package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/ingest"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/server"
)

// voiceTargets are subjects a caller may name as the reply subject of an
// ingest request, hoping auditd publishes its answer there: its own
// settings, key-value and stream subjects, the JetStream API, its private
// inbox, and malformed inboxes.
func voiceTargets() []string {
	apqKey := strings.Repeat("ab", 32)
	return []string{
		"auditctl.org.acme",
		"auditctl.org.beta",
		"$KV." + natsx.LeasesBucket + ".live.beta.1",
		"$KV." + natsx.APQBucket + "." + apqKey,
		"$KV." + natsx.ExportJobsBucket + ".beta.x",
		"audit.us.acme.PLATFORM.USER_CREATED",
		"auditlog.checkpoint.us.acme",
		"auditexport.jobs.us",
		"$JS.API.STREAM.DELETE." + natsx.AuditStream(domain.RegionUS),
		natsx.InboxPrefix + ".spy",
		"auditlog.ingest.PLATFORM",
		"_INBOX",
		"_INBOX.",
		"_INBOX..x",
		"_INBOX.*",
		"_INBOX.>",
		"_INBOXED.x",
		"_INBOX." + strings.Repeat("x", 300),
	}
}

// TestNATSIngestSpeaksOnlyToInboxes replays the attack that switched an
// org's log off: a request whose reply subject is one of auditd's own. It
// must be dropped before anything is decoded, whether or not it carries a
// valid token and event; nothing lands on any target, no setting, stream
// or bucket changes, and the drops are counted.
func TestNATSIngestSpeaksOnlyToInboxes(t *testing.T) {
	env := testenv.Start(t, testenv.WithNATSIngest())
	env.EnableOrg(t, "acme", domain.RegionUS)
	ctx := context.Background()
	js := env.JetStream()

	// Spies with every right watch each target, the way the targets'
	// owners (the settings projector, the lease holders, the stream) would.
	spies := map[string]*nats.Subscription{}
	for _, target := range voiceTargets() {
		// Not the ingest subject itself, which carries the requests, nor
		// subjects no subscription can name.
		if strings.HasPrefix(target, natsx.IngestSubjectPrefix) || strings.ContainsAny(target, "*>") ||
			strings.Contains(target, "..") || strings.HasSuffix(target, ".") || len(target) > 256 {
			continue
		}
		sub, err := js.Conn().SubscribeSync(target)
		if err != nil {
			t.Fatalf("spy on %s: %v", target, err)
		}
		spies[target] = sub
		// The spies share auditd's connection, which drains on shutdown.
		defer func() { _ = sub.Unsubscribe() }()
	}
	if err := js.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	control := streamState(t, js, natsx.ControlStream)
	before := scrape(t, env)

	nc := env.NATSIngest(t)
	valid, _ := json.Marshal(map[string]any{"events": []map[string]any{userCreated("acme", time.Now().Add(-time.Minute), "voice@example.com")}})
	sent := 0
	for _, target := range voiceTargets() {
		for _, authorization := range []string{"", "Bearer " + testenv.ServiceToken(t)} {
			m := nats.NewMsg(natsx.IngestSubjectPrefix + "PLATFORM")
			m.Reply = target
			m.Data = valid
			if authorization != "" {
				m.Header.Set(ingest.AuthorizationHeader, authorization)
			}
			if err := nc.PublishMsg(m); err != nil {
				t.Fatalf("publish with reply %s: %v", target, err)
			}
			sent++
		}
	}
	// And one with no reply subject at all.
	if err := nc.Publish(natsx.IngestSubjectPrefix+"PLATFORM", valid); err != nil {
		t.Fatal(err)
	}
	sent++
	// The responder takes requests in order: once a proper request is
	// answered, every one before it has been handled.
	start := time.Now()
	reply, _ := natsRecord(t, nc, natsx.IngestSubjectPrefix+"PLATFORM", "Bearer "+testenv.ServiceToken(t),
		mustJSON(t, map[string]any{"events": []map[string]any{userCreated("acme", time.Now().Add(-time.Minute), "inbox@example.com")}}))
	if len(reply.Results) != 1 || reply.Results[0].Status != ingest.Recorded {
		t.Fatalf("a request with an inbox reply: %+v", reply)
	}
	t.Logf("%d requests with foreign reply subjects handled, then a proper one answered in %v", sent, time.Since(start).Round(time.Millisecond))

	for target, sub := range spies {
		for {
			m, err := sub.NextMsg(50 * time.Millisecond)
			if err != nil {
				break
			}
			// The stream's subject carries the proper request's event.
			if !strings.Contains(string(m.Data), "inbox@example.com") {
				t.Errorf("auditd published on %s: %s", target, m.Data)
			}
		}
	}
	if got := streamState(t, js, natsx.ControlStream); got.Msgs != control.Msgs || got.LastSeq != control.LastSeq {
		t.Errorf("settings stream changed: %+v, was %+v", got, control)
	}
	for _, m := range streamMessages(t, js, natsx.AuditStream(domain.RegionUS)) {
		if strings.Contains(string(m.Data()), "voice@example.com") || strings.Contains(string(m.Data()), `"error"`) {
			t.Errorf("AUDIT_US holds %s: %s", m.Subject(), m.Data())
		}
	}
	for _, b := range []struct{ bucket, key string }{
		{natsx.LeasesBucket, "live.beta.1"},
		{natsx.APQBucket, strings.Repeat("ab", 32)},
		{natsx.ExportJobsBucket, "beta.x"},
	} {
		kv, err := js.KeyValue(ctx, b.bucket)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Get(ctx, b.key); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Errorf("%s holds key %s (%v)", b.bucket, b.key, err)
		}
	}
	var settings struct{ AuditLogSettings struct{ Enabled bool } }
	env.Do(t, testenv.AdminToken(t, "acme"), `{ auditLogSettings { enabled } }`, nil).MustData(t, &settings)
	if !settings.AuditLogSettings.Enabled {
		t.Error("acme's audit log was switched off")
	}
	env.WaitProjected(t)
	if c := list(t, env, "acme", map[string]any{"search": "voice@example.com"}, 10, ""); c.TotalCount != 0 {
		t.Errorf("an event of a request without an inbox was recorded: %v", c.ids())
	}

	after := scrape(t, env)
	dropped := after["auditlog_ingest_requests_dropped_total{reason=reply_subject}"] - before["auditlog_ingest_requests_dropped_total{reason=reply_subject}"]
	noReply := after["auditlog_ingest_requests_dropped_total{reason=no_reply}"] - before["auditlog_ingest_requests_dropped_total{reason=no_reply}"]
	if int(dropped) != sent-1 || noReply != 1 {
		t.Errorf("dropped %v for their reply subject and %v for none, want %d and 1", dropped, noReply, sent-1)
	}
	if after["auditlog_nats_responder_restricted"] != 1 {
		t.Errorf("auditlog_nats_responder_restricted = %v, want 1", after["auditlog_nats_responder_restricted"])
	}
}

// TestNATSIngestInboxesAreOwned: an ingest user reads replies in its own
// inbox only, so it cannot read another client's answers, and a client that
// does not use its inbox prefix gets none.
func TestNATSIngestInboxesAreOwned(t *testing.T) {
	other := natsx.User{Name: "other", Password: "testenv-other-password"}
	env := testenv.Start(t, testenv.WithNATSIngest(), func(c *server.Config) {
		c.NATSIngestUsers = append(c.NATSIngestUsers, other)
	})
	env.EnableOrg(t, "acme", domain.RegionUS)

	var errs asyncErrors
	spy, err := nats.Connect(env.NATSIngestURL(), nats.UserInfo(other.Name, other.Password),
		nats.CustomInboxPrefix(natsx.IngestInboxPrefix(other.Name)), nats.ErrorHandler(errs.handler))
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Close()
	var subs []*nats.Subscription
	for _, s := range []string{"_INBOX.>", natsx.IngestInboxPrefix(testenv.IngestUser.Name) + ".>", "_INBOX.*"} {
		sub, err := spy.SubscribeSync(s)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
		if err := spy.Flush(); err != nil {
			t.Fatal(err)
		}
		if _, ok := errs.violated(s); !ok {
			t.Errorf("no permission violation for %s subscribing to %s", other.Name, s)
		}
	}

	nc := env.NATSIngest(t)
	reply, _ := natsRecord(t, nc, natsx.IngestSubjectPrefix+"PLATFORM", "Bearer "+testenv.ServiceToken(t),
		mustJSON(t, map[string]any{"events": []map[string]any{userCreated("acme", time.Now().Add(-time.Minute), "owned@example.com")}}))
	if len(reply.Results) != 1 || reply.Results[0].Status != ingest.Recorded {
		t.Fatalf("reply: %+v", reply)
	}
	for _, sub := range subs {
		if m, err := sub.NextMsg(50 * time.Millisecond); err == nil {
			t.Errorf("%s read another client's reply on %s", other.Name, m.Subject)
		}
	}

	// nats.go's default inbox is not the user's: the reply never comes.
	plain, err := nats.Connect(env.NATSIngestURL(), nats.UserInfo(other.Name, other.Password))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.Request(natsx.IngestSubjectPrefix+"PLATFORM", []byte(`{"events":[]}`), 300*time.Millisecond); err == nil {
		t.Error("a client got a reply in an inbox outside its prefix")
	}
}

// TestResponderPermissions holds the responder user to replies: NATS
// itself refuses it every subject outside _INBOX, on the embedded server
// and on an external one configured as docs/operations.md says, and
// CheckResponder tells a confined user from one that is not.
func TestResponderPermissions(t *testing.T) {
	x := testenv.StartExternalNATS(t)
	connect := func(c natsx.Credentials, errs *asyncErrors) *nats.Conn {
		nc, err := nats.Connect(x.URL(), nats.UserInfo(c.User, c.Password), nats.ErrorHandler(errs.handler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	var errs asyncErrors
	responder := connect(testenv.ExternalResponder, &errs)
	if err := natsx.CheckResponder(responder); err != nil {
		t.Fatalf("CheckResponder on the responder user: %v", err)
	}
	for _, subject := range []string{"auditctl.org.acme", "$KV." + natsx.LeasesBucket + ".live.beta.1", "audit.us.acme.PLATFORM.USER_CREATED", "$JS.API.STREAM.LIST", natsx.InboxPrefix + ".x"} {
		if err := responder.Publish(subject, []byte(`{"error":{}}`)); err != nil {
			t.Fatal(err)
		}
		if err := responder.Flush(); err != nil {
			t.Fatal(err)
		}
		if _, ok := errs.violated(subject); !ok {
			t.Errorf("NATS let the responder publish to %s", subject)
		}
	}
	if _, err := responder.SubscribeSync("audit.>"); err != nil {
		t.Fatal(err)
	}
	if err := responder.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, ok := errs.violated("audit.>"); !ok {
		t.Error("NATS let the responder subscribe to audit.>")
	}

	var full asyncErrors
	if err := natsx.CheckResponder(connect(testenv.ExternalUser, &full)); !errors.Is(err, natsx.ErrResponderUnrestricted) {
		t.Fatalf("CheckResponder on auditd's unrestricted user: %v, want ErrResponderUnrestricted", err)
	}
}

// TestUnconfinedResponderIsVisible: a responder user NATS does not confine
// still answers inboxes only (auditd's own check), and says so on /metrics.
func TestUnconfinedResponderIsVisible(t *testing.T) {
	x := testenv.StartExternalNATS(t)
	env := testenv.Start(t, x.Use, func(c *server.Config) { c.NATSResponderCredentials = testenv.ExternalUser })
	if v := scrape(t, env)["auditlog_nats_responder_restricted"]; v != 0 {
		t.Fatalf("auditlog_nats_responder_restricted = %v with an unconfined user, want 0", v)
	}
	env.EnableOrg(t, "acme", domain.RegionUS)
	nc, err := nats.Connect(x.URL(), nats.UserInfo(testenv.IngestUser.Name, testenv.IngestUser.Password),
		nats.CustomInboxPrefix(natsx.IngestInboxPrefix(testenv.IngestUser.Name)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	spy, err := env.JetStream().Conn().SubscribeSync("auditctl.org.acme")
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(natsx.IngestSubjectPrefix + "PLATFORM")
	m.Reply = "auditctl.org.acme"
	m.Data = []byte(`{}`)
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	reply, _ := natsRecord(t, nc, natsx.IngestSubjectPrefix+"PLATFORM", "", []byte(`{}`))
	if reply.Error == nil || reply.Error.Code != domain.CodeUnauthenticated {
		t.Fatalf("reply: %+v", reply)
	}
	if got, err := spy.NextMsg(50 * time.Millisecond); err == nil {
		t.Fatalf("auditd published on auditctl.org.acme: %s", got.Data)
	}
}

// TestExternalNATSNeedsAResponder: auditd will not serve an external NATS
// without the responder's credentials.
func TestExternalNATSNeedsAResponder(t *testing.T) {
	x := testenv.StartExternalNATS(t)
	cfg := testenv.Config(t, x.Use, func(c *server.Config) { c.NATSResponderCredentials = natsx.Credentials{} })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := server.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "NATS_RESPONDER_USER") {
		t.Fatalf("Run without a responder user: %v", err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// streamMessages reads every message of stream.
func streamMessages(t *testing.T, js jetstream.JetStream, stream string) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	last := streamState(t, js, stream).LastSeq
	var out []jetstream.Msg
	for uint64(len(out)) < last {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("read %s: %v", stream, err)
		}
		out = append(out, m)
		if md, _ := m.Metadata(); md != nil && md.Sequence.Stream >= last {
			break
		}
	}
	return out
}

// streamState is what a stream holds, for before-and-after comparisons.
func streamState(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamState {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State
}

// TestSystemEventTypesAreAuditdsAlone: a service token cannot write the
// audit log's own lifecycle (opt-in and out, denied settings changes,
// exports, reads of the log), over HTTP or NATS, with any actor; each such
// event is refused with FORBIDDEN on its type, and the good events of the
// same batch are recorded.
func TestSystemEventTypesAreAuditdsAlone(t *testing.T) {
	env := testenv.Start(t, testenv.WithNATSIngest())
	env.EnableOrg(t, "acme", domain.RegionUS)
	nc := env.NATSIngest(t)
	at := time.Now().Add(-time.Minute)

	var system []string
	for _, info := range domain.Catalog() {
		if info.Type.System() {
			system = append(system, string(info.Type))
		}
	}
	if len(system) != 10 {
		t.Fatalf("system types %v, want the ten AUDIT_LOG types (five of them AUDIT_LOG_STREAM_*)", system)
	}
	forged := func(typ string) map[string]any {
		return ev("acme", typ, "PLATFORM", at, map[string]any{"region": "US", "count": 1},
			map[string]any{"actor": map[string]any{"kind": "SYSTEM", "id": "auditd", "name": "auditd"}})
	}
	const mutation = `mutation($events: [AuditEventInput!]!) {
  recordAuditEvents(events: $events) { results { id status code field reason } }
}`
	for _, typ := range system {
		good := userCreated("acme", at, strings.ToLower(typ)+"@example.com")
		t.Run("http "+typ, func(t *testing.T) {
			var out struct {
				RecordAuditEvents struct {
					Results []struct{ Status, Code, Field, Reason string }
				}
			}
			env.Do(t, testenv.ServiceToken(t), mutation, map[string]any{"events": []map[string]any{forged(typ), good}}).MustData(t, &out)
			res := out.RecordAuditEvents.Results
			if len(res) != 2 || res[0].Status != "REJECTED" || res[0].Code != string(domain.CodeForbidden) || res[0].Field != "type" {
				t.Fatalf("forged %s: %+v", typ, res)
			}
			if res[1].Status != "RECORDED" {
				t.Fatalf("the good event of the batch: %+v", res[1])
			}
		})
		t.Run("nats "+typ, func(t *testing.T) {
			reply, _ := natsRecord(t, nc, natsx.IngestSubjectPrefix+"PLATFORM", "Bearer "+testenv.ServiceToken(t),
				mustJSON(t, map[string]any{"events": []map[string]any{forged(typ)}}))
			if reply.Error != nil || len(reply.Results) != 1 || reply.Results[0].Status != ingest.Rejected || reply.Results[0].Code != domain.CodeForbidden {
				t.Fatalf("forged %s over NATS: %+v", typ, reply)
			}
		})
	}
	env.WaitProjected(t)
	// The real ones: the opt-in, and the reads this test made.
	c := list(t, env, "acme", map[string]any{"types": system}, 50, "")
	for _, e := range c.Edges {
		if e.Node.Actor.ID == "auditd" || (e.Node.Type != "AUDIT_LOG_OPT_IN" && e.Node.Type != "AUDIT_LOG_VIEWED") {
			t.Errorf("forged %s by %+v stored", e.Node.Type, e.Node.Actor)
		}
	}
}
