package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/ingest"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
)

// natsRecord sends body as an ingest request on subject with the given
// Authorization header value (none when empty) and returns the reply and
// how long it took.
func natsRecord(t *testing.T, nc *nats.Conn, subject, authorization string, body []byte) (ingest.Reply, time.Duration) {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Data = body
	if authorization != "" {
		m.Header.Set(ingest.AuthorizationHeader, authorization)
	}
	start := time.Now()
	msg, err := nc.RequestMsg(m, 5*time.Second)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	var reply ingest.Reply
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		t.Fatalf("reply %s is not JSON: %v", msg.Data, err)
	}
	return reply, took
}

func TestNATSNoListenerByDefault(t *testing.T) {
	env := testenv.Start(t)
	if u := env.NATSIngestURL(); u != "" {
		t.Fatalf("auditd's embedded NATS listens on %s without --nats-listen", u)
	}
	// auditd itself works over its in-process connection.
	env.EnableOrg(t, "acme", domain.RegionUS)
	mustRecord(t, env, []map[string]any{userCreated("acme", time.Now().Add(-time.Minute), "inproc@example.com")})
}

// TestNATSIngestAuthorization holds NATS ingest to the rules of HTTP: a
// service token in the Authorization header, its sources and orgs, and the
// subject's source.
func TestNATSIngestAuthorization(t *testing.T) {
	env := testenv.Start(t, testenv.WithNATSIngest())
	env.EnableOrg(t, "acme", domain.RegionUS)
	env.EnableOrg(t, "globex", domain.RegionUS)
	nc := env.NATSIngest(t)

	service := func(sources []string, orgs ...string) auth.Claims {
		return auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "service:natsauth"}, Kind: "service", Sources: sources, Orgs: orgs}
	}
	acmePlatform := "Bearer " + testenv.Token(t, service([]string{"PLATFORM"}, "acme"))
	idrOnly := "Bearer " + testenv.Token(t, service([]string{"INSIGHT_IDR"}))
	expired, err := auth.Mint(testenv.Secret, service([]string{"PLATFORM"}), -time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := auth.Mint([]byte("not-the-secret"), service([]string{"PLATFORM"}), time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	body := func(e map[string]any) []byte {
		b, _ := json.Marshal(map[string]any{"events": []map[string]any{e}})
		return b
	}
	// Grace's name with a byte that is not UTF-8; JSON decoding alone would
	// turn it into U+FFFD and record the event.
	notUTF8 := func(e map[string]any) []byte {
		return bytes.Replace(body(e), []byte("Grace Hopper"), []byte("Grace \xffHopper"), 1)
	}

	tests := []struct {
		name          string
		subject       string
		authorization string
		org           string
		body          func(map[string]any) []byte
		wantError     domain.Code // of the whole request
		wantStatus    ingest.Status
		wantCode      domain.Code // of the event
	}{
		{name: "no token", authorization: "", wantError: domain.CodeUnauthenticated},
		{name: "not a bearer token", authorization: "Basic " + testenv.ServiceToken(t), wantError: domain.CodeUnauthenticated},
		{name: "token signed with another key", authorization: "Bearer " + otherKey, wantError: domain.CodeUnauthenticated},
		{name: "expired token", authorization: "Bearer " + expired, wantError: domain.CodeUnauthenticated},
		{name: "garbage token", authorization: "Bearer not.a.jwt", wantError: domain.CodeUnauthenticated},
		{name: "user token", authorization: "Bearer " + testenv.AdminToken(t, "acme"), wantError: domain.CodeForbidden},
		{name: "token for org A records for org B", authorization: acmePlatform, org: "globex", wantStatus: ingest.Rejected, wantCode: domain.CodeForbidden},
		{name: "token for source X on subject of source Y", authorization: idrOnly, wantError: domain.CodeForbidden},
		{name: "body not UTF-8", authorization: acmePlatform, body: notUTF8, wantError: domain.CodeBadUserInput},
		{name: "body not UTF-8 without token", body: notUTF8, wantError: domain.CodeUnauthenticated},
		{name: "valid", authorization: acmePlatform, wantStatus: ingest.Recorded},
	}
	type sent struct {
		org, email string
		recorded   bool
	}
	var sents []sent
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.subject == "" {
				tc.subject = natsx.IngestSubjectPrefix + "PLATFORM"
			}
			if tc.org == "" {
				tc.org = "acme"
			}
			if tc.body == nil {
				tc.body = body
			}
			email := "natsauth-" + strings.Repeat("x", i) + "@example.com"
			reply, took := natsRecord(t, nc, tc.subject, tc.authorization, tc.body(userCreated(tc.org, time.Now().Add(-time.Minute), email)))
			sents = append(sents, sent{tc.org, email, tc.wantStatus == ingest.Recorded})
			if tc.wantError != "" {
				if reply.Error == nil || reply.Error.Code != tc.wantError || len(reply.Results) != 0 {
					t.Fatalf("reply %+v, want error %s", reply, tc.wantError)
				}
				if tc.name == "body not UTF-8" && !strings.Contains(reply.Error.Message, "UTF-8") {
					t.Fatalf("message %q does not say the body is not UTF-8", reply.Error.Message)
				}
				t.Logf("refused with %s in %v: %s", reply.Error.Code, took.Round(time.Microsecond), reply.Error.Message)
				return
			}
			if reply.Error != nil || len(reply.Results) != 1 {
				t.Fatalf("reply %+v, want one result", reply)
			}
			if r := reply.Results[0]; r.Status != tc.wantStatus || r.Code != tc.wantCode {
				t.Fatalf("result %+v, want %s %s", r, tc.wantStatus, tc.wantCode)
			}
			t.Logf("%s %s in %v: %s", reply.Results[0].Status, reply.Results[0].Code, took.Round(time.Microsecond), reply.Results[0].Reason)
		})
	}

	env.WaitProjected(t)
	for _, s := range sents {
		want := 0
		if s.recorded {
			want = 1
		}
		if c := list(t, env, s.org, map[string]any{"search": s.email}, 50, ""); c.TotalCount != want {
			t.Errorf("%s in %s's log: %d events, want %d", s.email, s.org, c.TotalCount, want)
		}
	}
}

// asyncErrors collects the errors the server reports to a connection
// asynchronously, such as permission violations.
type asyncErrors struct {
	mu   sync.Mutex
	errs []error
	at   []time.Time
}

func (a *asyncErrors) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.errs = append(a.errs, err)
	a.at = append(a.at, time.Now())
}

// violated reports whether the server refused a publish or subscription on
// subject, waiting a little for the report, and when the refusal arrived.
func (a *asyncErrors) violated(subject string) (time.Time, bool) {
	for range 100 {
		a.mu.Lock()
		for i, err := range a.errs {
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
				a.mu.Unlock()
				return a.at[i], true
			}
		}
		a.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	return time.Time{}, false
}

// TestNATSIngestListener replays the attacks on the listener: the ingest
// user may request ingest and nothing else.
func TestNATSIngestListener(t *testing.T) {
	env := testenv.Start(t, testenv.WithNATSIngest())
	env.EnableOrg(t, "acme", domain.RegionUS)
	ctx := context.Background()
	url := env.NATSIngestURL()

	t.Run("connect", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			opts []nats.Option
		}{
			{"anonymous", nil},
			{"wrong password", []nats.Option{nats.UserInfo(testenv.IngestUser.Name, "guess")}},
			{"service user", []nats.Option{nats.UserInfo("auditd", "guess")}},
			{"token instead of user", []nats.Option{nats.Token(testenv.ServiceToken(t))}},
		} {
			start := time.Now()
			nc, err := nats.Connect(url, tc.opts...)
			if err == nil {
				nc.Close()
				t.Fatalf("%s: connected", tc.name)
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Fatalf("%s: %v, want an authorization violation", tc.name, err)
			}
			t.Logf("%s: refused in %v: %v", tc.name, time.Since(start).Round(time.Microsecond), err)
		}
	})

	var errs asyncErrors
	nc := env.NATSIngest(t, nats.ErrorHandler(errs.handler))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 2*time.Second) }

	t.Run("forged event", func(t *testing.T) {
		e := userCreated("acme", time.Now().Add(-48*time.Hour), "forged@example.com")
		e["recordedAt"] = time.Now().Add(-48 * time.Hour).UTC().Format(time.RFC3339Nano)
		data, _ := json.Marshal(e)
		subject := "audit.us.acme.PLATFORM.USER_CREATED"
		c, cancel := short()
		defer cancel()
		start := time.Now()
		_, err := js.Publish(c, subject, data, jetstream.WithMsgID(e["id"].(string)))
		if err == nil {
			t.Fatal("forged event acknowledged")
		}
		at, ok := errs.violated(subject)
		if !ok {
			t.Fatalf("no permission violation for %s (publish failed with %v)", subject, err)
		}
		t.Logf("server refused in %v; the publish gave up after %v: %v", at.Sub(start).Round(time.Microsecond), time.Since(start).Round(time.Millisecond), err)
		// Also plain, without waiting for an ack.
		if err := nc.Publish(subject, data); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		stream, err := env.JetStream().Stream(ctx, natsx.AuditStream(domain.RegionUS))
		if err != nil {
			t.Fatal(err)
		}
		if m, err := stream.GetLastMsgForSubject(ctx, subject); !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Fatalf("stream holds a message on %s (%v): %v", subject, m, err)
		}
		env.WaitProjected(t)
		if c := list(t, env, "acme", map[string]any{"search": "forged@example.com"}, 50, ""); c.TotalCount != 0 {
			t.Fatalf("forged event in the read model: %v", c.ids())
		}
	})

	t.Run("delete stream", func(t *testing.T) {
		c, cancel := short()
		defer cancel()
		start := time.Now()
		if err := js.DeleteStream(c, natsx.AuditStream(domain.RegionUS)); err == nil {
			t.Fatal("stream deleted")
		}
		took := time.Since(start)
		at, ok := errs.violated("$JS.API.STREAM.DELETE.AUDIT_US")
		if !ok {
			t.Fatal("no permission violation for $JS.API.STREAM.DELETE.AUDIT_US")
		}
		t.Logf("server refused in %v; the request gave up after %v", at.Sub(start).Round(time.Microsecond), took.Round(time.Millisecond))
		if _, err := env.JetStream().Stream(ctx, natsx.AuditStream(domain.RegionUS)); err != nil {
			t.Fatalf("stream gone: %v", err)
		}
	})

	t.Run("read exports", func(t *testing.T) {
		// Something to steal: a job entry and a file.
		kv, err := env.JetStream().KeyValue(ctx, natsx.ExportJobsBucket)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, "probe.job", []byte(`{"secret":true}`)); err != nil {
			t.Fatal(err)
		}
		obs, err := env.JetStream().ObjectStore(ctx, natsx.ExportFilesBucket(domain.RegionUS))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := obs.PutBytes(ctx, "probe", []byte("secret export")); err != nil {
			t.Fatal(err)
		}
		for name, read := range map[string]func(context.Context) error{
			"key-value bucket": func(c context.Context) error {
				_, err := js.KeyValue(c, natsx.ExportJobsBucket)
				return err
			},
			"object store": func(c context.Context) error {
				_, err := js.ObjectStore(c, natsx.ExportFilesBucket(domain.RegionUS))
				return err
			},
			"direct get": func(c context.Context) error {
				_, err := nc.RequestWithContext(c, "$JS.API.DIRECT.GET.KV_"+natsx.ExportJobsBucket,
					[]byte(`{"last_by_subj":"$KV.`+natsx.ExportJobsBucket+`.probe.job"}`))
				return err
			},
		} {
			c, cancel := short()
			start := time.Now()
			err := read(c)
			cancel()
			if err == nil {
				t.Fatalf("%s: read", name)
			}
			t.Logf("%s: the request gave up after %v: %v", name, time.Since(start).Round(time.Millisecond), err)
		}
		for _, subject := range []string{
			"$JS.API.DIRECT.GET.KV_" + natsx.ExportJobsBucket,
			"$JS.API.STREAM.INFO.KV_" + natsx.ExportJobsBucket,
			"$JS.API.STREAM.INFO.OBJ_" + natsx.ExportFilesBucket(domain.RegionUS),
		} {
			if _, ok := errs.violated(subject); !ok {
				t.Errorf("no permission violation for %s", subject)
			}
		}
	})

	t.Run("subscribe", func(t *testing.T) {
		subjects := []string{"audit.>", "auditctl.>", "$KV." + natsx.ExportJobsBucket + ".>", "$O.>", natsx.InboxPrefix + ".>", ">"}
		var subs []*nats.Subscription
		for _, s := range subjects {
			sub, err := nc.SubscribeSync(s)
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, sub)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		for _, s := range subjects {
			if _, ok := errs.violated(s); !ok {
				t.Errorf("no permission violation for subscribing to %s", s)
			}
		}
		// Traffic each subscription would see if it were allowed: an event
		// appended, projected (fetched into auditd's inbox) and a job entry.
		mustRecord(t, env, []map[string]any{userCreated("acme", time.Now().Add(-time.Minute), "watched@example.com")})
		env.WaitProjected(t)
		kv, err := env.JetStream().KeyValue(ctx, natsx.ExportJobsBucket)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, "probe."+ulid.Make().String(), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		for i, sub := range subs {
			if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
				t.Errorf("subscription to %s received %s", subjects[i], m.Subject)
			}
		}
	})
}
