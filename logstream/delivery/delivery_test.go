package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/egress"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/logstream"
	"github.com/auditlog/auditlog/logstream/delivery"
	"github.com/auditlog/auditlog/logstream/streamstore"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/projector"
	"github.com/auditlog/auditlog/readmodel"
	"github.com/auditlog/auditlog/secretbox"
)

const region = domain.RegionEU

// receiver is a webhook endpoint whose answer each test steers.
type receiver struct {
	t    *testing.T
	addr string

	mu     sync.Mutex
	srv    *http.Server
	ids    []string // every event id received with a 2xx answer, in order
	answer func(n int) int
	hang   chan struct{} // requests wait on it while answer says 0
	reqs   int
	// onRequest, if set, is told of each request before it is answered.
	onRequest chan int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, answer: func(int) int { return http.StatusOK }}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(func() { r.stop() })
	return r
}

func (r *receiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 5 * time.Second}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// stop closes the listener and its connections.
func (r *receiver) stop() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

func (r *receiver) url() string { return "http://" + r.addr + "/hook" }

func (r *receiver) handle(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs++
	n := r.reqs
	status := r.answer(n)
	hang, notify := r.hang, r.onRequest
	r.mu.Unlock()
	if notify != nil {
		select {
		case notify <- n:
		default:
		}
	}
	if status == 0 {
		select {
		case <-hang:
		case <-req.Context().Done():
		}
		return
	}
	if status/100 != 2 {
		w.WriteHeader(status)
		return
	}
	var p struct {
		Data struct {
			Events []struct {
				ID        string `json:"id"`
				LeafIndex *int64 `json:"leafIndex"`
			} `json:"events"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, e := range p.Data.Events {
		r.ids = append(r.ids, e.ID)
	}
	r.mu.Unlock()
	w.WriteHeader(status)
}

func (r *receiver) set(answer func(n int) int) {
	r.mu.Lock()
	r.answer = answer
	r.mu.Unlock()
}

func (r *receiver) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids)
}

// env is NATS, Postgres and what an engine needs.
type env struct {
	js     jetstream.JetStream
	pool   *pgxpool.Pool
	store  *streamstore.Store
	box    *secretbox.Box
	policy *egress.Policy
	svc    *delivery.Service
}

type enabled struct{}

func (enabled) Get(_ context.Context, org string) (domain.Settings, error) {
	return domain.Settings{OrgID: org, Enabled: true, Region: region}, nil
}

func newEnv(t *testing.T) *env {
	t.Helper()
	js := testenv.JetStream(t, natsx.Streams{}.WithDefaults())
	pool := testenv.Pool(t)
	if err := readmodel.Migrate(context.Background(), pool, readmodel.ControlSchema, "control"); err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	policy := egress.NewPolicy([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	e := &env{js: js, pool: pool, store: streamstore.New(pool), box: box, policy: policy}
	e.svc = &delivery.Service{Store: e.store, Box: box, Policy: policy, Settings: enabled{}, Senders: delivery.NewSender("test")}
	return e
}

// engine starts an engine, an instance of its own in the membership,
// until the test ends or stop is called; stop leaves the membership too.
func (e *env) engine(t *testing.T, cfg delivery.Config) (stop func()) {
	t.Helper()
	cfg.Store, cfg.JS, cfg.Box, cfg.Policy, cfg.Senders = e.store, e.js, e.box, e.policy, delivery.NewSender("test")
	members, err := projector.Join(context.Background(), e.pool, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Members = members
	if cfg.Tick == 0 {
		cfg.Tick = 100 * time.Millisecond
	}
	cfg.MinBackoff, cfg.MaxBackoff, cfg.FetchWait = 20*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
	cfg.Options.RequestTimeout = 500 * time.Millisecond
	eng, err := delivery.NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); eng.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done; members.Leave(context.Background()) }) }
	t.Cleanup(stop)
	return stop
}

func secret() logstream.Secret { return logstream.Secret("whsec_" + strings.Repeat("QUJD", 8)) }

func (e *env) createWebhook(t *testing.T, org, url string, filter *streamstore.Filter) *delivery.View {
	t.Helper()
	name := "siem"
	start := time.Now().Add(-time.Hour)
	v, err := e.svc.Create(context.Background(), &domain.Principal{OrgID: org, Subject: "admin"}, delivery.Input{
		Name: &name, Filter: filter, StartAt: &start,
		Destination: &delivery.Destination{Webhook: &logstream.WebhookConfig{URL: url, Secrets: []logstream.Secret{secret()}, Format: logstream.FormatJSON}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// publish appends n events of org to the region's stream and returns their
// ids in stream order.
func (e *env) publish(t *testing.T, org string, n int, typ domain.EventType) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		ev := &domain.Event{
			ID: ulid.Make().String(), OrgID: org, Source: domain.SourcePlatform, Type: typ,
			OccurredAt: time.Now().UTC(), RecordedAt: time.Now().UTC(),
			Actor:   domain.Actor{Kind: domain.ActorUser, ID: "u-1"},
			Details: json.RawMessage(`{"userId":"u-2","userEmail":"b@example.com"}`),
		}
		data, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.js.Publish(context.Background(), natsx.AuditSubject(region, ev), data); err != nil {
			t.Fatal(err)
		}
		ids[i] = ev.ID
	}
	return ids
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkOrder fails unless got, once duplicates are dropped, is want: every
// event once at least, in order, and nothing else.
func checkOrder(t *testing.T, got, want []string) {
	t.Helper()
	seen := map[string]bool{}
	var first []string
	for _, id := range got {
		if !seen[id] {
			seen[id] = true
			first = append(first, id)
		}
	}
	if !slices.Equal(first, want) {
		t.Fatalf("received %d distinct events (of %d), not in publication order or with some missing or foreign", len(first), len(want))
	}
}

func (e *env) state(t *testing.T, org, id string) *streamstore.Stream {
	t.Helper()
	s, err := e.store.Get(context.Background(), org, id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFilter: a stream delivers only the types and query it asks for, and
// still moves past the others.
func TestFilter(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t)
	org := "org-" + testenv.RandomHex(4)
	s := e.createWebhook(t, org, r.url(), &streamstore.Filter{Types: []domain.EventType{"USER_CREATED", "USER_DELETED"}, Query: "-type:USER_DELETED"})
	e.engine(t, delivery.Config{})
	var want []string
	for range 3 {
		want = append(want, e.publish(t, org, 5, "USER_CREATED")...)
		e.publish(t, org, 5, "USER_DELETED")
		e.publish(t, org, 5, "USER_LOGOUT")
	}
	waitFor(t, "the matching events and the position past the rest", 10*time.Second, func() bool {
		return e.state(t, org, s.ID).Lag != nil && *e.state(t, org, s.ID).Lag == 0 && len(r.received()) >= len(want)
	})
	checkOrder(t, r.received(), want)
}

// TestTakeover: an instance stopped mid-batch leaves the stream to
// another, which resends from the stored position: nothing lost, order
// kept, duplicates with their ids; only one instance delivers at a time.
func TestTakeover(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t)
	org := "org-" + testenv.RandomHex(4)
	s := e.createWebhook(t, org, r.url(), nil)
	want := e.publish(t, org, 100, "USER_CREATED")

	hang := make(chan struct{})
	requests := make(chan int, 16)
	r.mu.Lock()
	r.hang, r.onRequest = hang, requests
	r.mu.Unlock()
	// The third request hangs: the first instance is mid-batch.
	r.set(func(n int) int {
		if n == 3 {
			return 0
		}
		return http.StatusOK
	})
	stopA := e.engine(t, delivery.Config{MaxEvents: 20})
	stopB := e.engine(t, delivery.Config{MaxEvents: 20})
	waitFor(t, "the hanging request", 10*time.Second, func() bool {
		for {
			select {
			case n := <-requests:
				if n == 3 {
					return true
				}
			default:
				return false
			}
		}
	})
	// Whichever instance hangs, the other must not deliver meanwhile.
	before := len(r.received())
	time.Sleep(300 * time.Millisecond)
	if got := len(r.received()); got != before {
		t.Fatalf("a second deliverer ran while the first held the stream: %d events became %d", before, got)
	}
	stopA()
	stopB()
	close(hang)
	stopC := e.engine(t, delivery.Config{MaxEvents: 20})
	defer stopC()
	want = append(want, e.publish(t, org, 10, "USER_CREATED")...)
	waitFor(t, "every event after the takeover", 20*time.Second, func() bool { return e.state(t, org, s.ID).LastEventID == want[len(want)-1] })
	checkOrder(t, r.received(), want)
}

// TestPauseResume: a paused stream delivers nothing and resumes from where
// it stopped.
func TestPauseResume(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t)
	org := "org-" + testenv.RandomHex(4)
	s := e.createWebhook(t, org, r.url(), nil)
	e.engine(t, delivery.Config{})
	want := e.publish(t, org, 30, "USER_CREATED")
	waitFor(t, "the first events", 10*time.Second, func() bool { return len(r.received()) >= 30 })
	admin := &domain.Principal{OrgID: org}
	v, err := e.svc.Pause(context.Background(), admin, s.ID)
	if err != nil || v.Status != streamstore.Paused || v.PausedBy != streamstore.PausedByAdmin {
		t.Fatalf("pause: %v %+v", err, v)
	}
	// Let the deliverer see the pause before publishing.
	time.Sleep(300 * time.Millisecond)
	n := len(r.received())
	paused := e.publish(t, org, 30, "USER_CREATED")
	time.Sleep(500 * time.Millisecond)
	if len(r.received()) != n {
		t.Fatalf("a paused stream delivered %d events", len(r.received())-n)
	}
	want = append(want, paused...)
	if v, err = e.svc.Resume(context.Background(), admin, s.ID); err != nil || v.Status != streamstore.Active {
		t.Fatalf("resume: %v %+v", err, v)
	}
	waitFor(t, "the events published while paused", 10*time.Second, func() bool { return len(r.received()) >= len(want) })
	checkOrder(t, r.received(), want)
}

// TestEgressRefused: a destination the egress policy refuses puts the
// stream in ERROR with the policy's message, and the events wait.
func TestEgressRefused(t *testing.T) {
	e := newEnv(t)
	org := "org-" + testenv.RandomHex(4)
	s := e.createWebhook(t, org, "https://10.255.255.1/hook", nil)
	e.engine(t, delivery.Config{})
	e.publish(t, org, 3, "USER_CREATED")
	waitFor(t, "ERROR with the egress refusal", 10*time.Second, func() bool {
		st := e.state(t, org, s.ID)
		return st.Status == streamstore.Error && strings.Contains(st.LastError, "10.255.255.1")
	})
	if st := e.state(t, org, s.ID); st.Position != 0 || st.Delivered != 0 {
		t.Fatalf("position %d, delivered %d after refusals", st.Position, st.Delivered)
	}
}

// TestPauseAfterFailing: auditd pauses a stream that has failed for
// PauseAfter, marking itself as the one that paused it.
func TestPauseAfterFailing(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t)
	r.set(func(int) int { return http.StatusBadGateway })
	org := "org-" + testenv.RandomHex(4)
	s := e.createWebhook(t, org, r.url(), nil)
	e.engine(t, delivery.Config{PauseAfter: 300 * time.Millisecond})
	e.publish(t, org, 3, "USER_CREATED")
	waitFor(t, "the stream paused by auditd", 10*time.Second, func() bool {
		st := e.state(t, org, s.ID)
		return st.Status == streamstore.Paused && st.PausedBy == streamstore.PausedByAuditd
	})
	if st := e.state(t, org, s.ID); st.Position != 0 || st.LastError == "" {
		t.Fatalf("paused: position %d, last error %q", st.Position, st.LastError)
	}
}

func TestSecretsNeverStoredInTheClear(t *testing.T) {
	e := newEnv(t)
	org := "org-" + testenv.RandomHex(4)
	s := e.createWebhook(t, org, "http://127.0.0.1:1/hook", nil)
	st := e.state(t, org, s.ID)
	if strings.Contains(string(st.Config), secret().Reveal()) || strings.Contains(string(st.Sealed), secret().Reveal()) {
		t.Fatal("the secret is stored in the clear")
	}
	if !s.SecretSet || fmt.Sprint(s.Destination.Webhook.Secrets) == secret().Reveal() {
		t.Fatalf("view: secretSet %v, secrets %v", s.SecretSet, s.Destination.Webhook.Secrets)
	}
}

// TestSupersededDelivererStops: a deliverer whose stream another deliverer
// has claimed (as after this one froze past its lease) sends nothing more,
// so the one that took over is alone to send and the order holds.
func TestSupersededDelivererStops(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t)
	org := "org-" + testenv.RandomHex(4)
	s := e.createWebhook(t, org, r.url(), nil)
	// No second look for streams: the engine does not see the claim
	// changed hands until the deliverer checks before its next send.
	e.engine(t, delivery.Config{Tick: time.Hour})
	want := e.publish(t, org, 10, "USER_CREATED")
	waitFor(t, "the first events", 10*time.Second, func() bool { return len(r.received()) >= len(want) })
	if _, err := e.store.Claim(context.Background(), s.ID, e.state(t, org, s.ID).Version, e.holder(t, s.ID), "another-instance"); err != nil {
		t.Fatal(err)
	}
	n := len(r.received())
	e.publish(t, org, 10, "USER_CREATED")
	time.Sleep(500 * time.Millisecond) // several fetch rounds of the superseded deliverer
	if got := len(r.received()); got != n {
		t.Fatalf("a superseded deliverer sent %d more events", got-n)
	}
}

// holder is the token stream id's row holds, empty for none.
func (e *env) holder(t *testing.T, id string) string {
	t.Helper()
	refs, err := e.store.Delivering(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		if r.ID == id {
			return r.Holder
		}
	}
	t.Fatalf("stream %s is not delivering", id)
	return ""
}

// TestClaimsFollowTheCensus: a stream claimed by a live instance is left
// to it, however long it is idle; once that instance leaves the census
// (it died, or froze past the holder timeout) another claims the stream
// and delivers from the stored position; a claim naming no instance, as
// an earlier version wrote, is free.
func TestClaimsFollowTheCensus(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// holder makes the token a stream is claimed under, and returns
		// what makes its instance leave (nil: it is not alive).
		holder func(t *testing.T, e *env) (string, func())
	}{
		{"live instance, then gone", func(t *testing.T, e *env) (string, func()) {
			m, err := projector.Join(ctx, e.pool, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			self, _, err := m.Alive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("%08x.frozen", self), func() { m.Leave(ctx) }
		}},
		{"instance not in the census", func(*testing.T, *env) (string, func()) { return "0000beef.dead", nil }},
		{"claim naming no instance", func(*testing.T, *env) (string, func()) { return "written-before-members", nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := newReceiver(t)
			org := "org-" + testenv.RandomHex(4)
			s := e.createWebhook(t, org, r.url(), nil)
			token, leave := tc.holder(t, e)
			if _, err := e.store.Claim(ctx, s.ID, e.state(t, org, s.ID).Version, "", token); err != nil {
				t.Fatal(err)
			}
			want := e.publish(t, org, 5, "USER_CREATED")
			e.engine(t, delivery.Config{})
			if leave != nil {
				time.Sleep(500 * time.Millisecond) // five ticks
				if n := len(r.received()); n != 0 {
					t.Fatalf("a stream a live instance holds was delivered by another: %d events", n)
				}
				if got := e.holder(t, s.ID); got != token {
					t.Fatalf("holder %q, want %q: the claim of a live instance was taken", got, token)
				}
				leave()
			}
			waitFor(t, "the events, by the instance that took the stream over", 10*time.Second, func() bool {
				return e.state(t, org, s.ID).LastEventID == want[len(want)-1]
			})
			checkOrder(t, r.received(), want)
		})
	}
}

// TestClaimIsCompareAndSet: of instances claiming a stream from the holder
// they listed, one wins; a claim from a holder that is no longer there,
// or at another version, fails; a release frees only the releaser's
// claim, and a released stream is free whatever holder was listed.
func TestClaimIsCompareAndSet(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	org := "org-" + testenv.RandomHex(4)
	s := e.createWebhook(t, org, "http://127.0.0.1:1/hook", nil)
	version := e.state(t, org, s.ID).Version
	var wg sync.WaitGroup
	var mu sync.Mutex
	var won []string
	for i := range 8 {
		wg.Go(func() {
			holder := fmt.Sprintf("%08x.claim", i)
			if _, err := e.store.Claim(ctx, s.ID, version, "", holder); err == nil {
				mu.Lock()
				won = append(won, holder)
				mu.Unlock()
			} else if domain.CodeOf(err) != domain.CodeNotFound {
				t.Errorf("claim: %v", err)
			}
		})
	}
	wg.Wait()
	if len(won) != 1 || e.holder(t, s.ID) != won[0] {
		t.Fatalf("claims from no holder: %v won, the row holds %q", won, e.holder(t, s.ID))
	}
	if _, err := e.store.Claim(ctx, s.ID, version, "", "late"); domain.CodeOf(err) != domain.CodeNotFound {
		t.Fatalf("a claim from a holder no longer there: %v, want NOT_FOUND", err)
	}
	if _, err := e.store.Claim(ctx, s.ID, version+1, won[0], "next"); domain.CodeOf(err) != domain.CodeNotFound {
		t.Fatalf("a claim at another version: %v, want NOT_FOUND", err)
	}
	if err := e.store.Release(ctx, s.ID, "someone-else"); err != nil || e.holder(t, s.ID) != won[0] {
		t.Fatalf("another's release: %v, the row holds %q", err, e.holder(t, s.ID))
	}
	if err := e.store.Release(ctx, s.ID, won[0]); err != nil || e.holder(t, s.ID) != "" {
		t.Fatalf("the holder's release: %v, the row holds %q", err, e.holder(t, s.ID))
	}
	// Released meanwhile: a claim from the holder listed before is a
	// claim of a free stream.
	if _, err := e.store.Claim(ctx, s.ID, version, won[0], "after-release"); err != nil || e.holder(t, s.ID) != "after-release" {
		t.Fatalf("a claim after a release: %v, the row holds %q", err, e.holder(t, s.ID))
	}
}
