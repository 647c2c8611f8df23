package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/live"
	"github.com/auditlog/auditlog/server"
)

const liveSubscription = `subscription($f: AuditEventFilter, $after: String) {
  auditEventRecorded(filter: $f, after: $after) { id type source liveCursor userAgent actor { email } }
}`

// wsClient is a graphql-transport-ws client over a real websocket.
type wsClient struct {
	t   *testing.T
	c   *websocket.Conn
	ctx context.Context
}

// connectWS dials, authenticates with token and waits for connection_ack.
func connectWS(t *testing.T, env *testenv.Env, token string) *wsClient {
	t.Helper()
	c, ctx := dialWS(t, env, token)
	w := &wsClient{t: t, c: c, ctx: ctx}
	if m := w.read(); m.Type != "connection_ack" {
		t.Fatalf("want connection_ack, got %+v", m)
	}
	return w
}

func (w *wsClient) subscribe(id, query string, vars map[string]any) {
	w.t.Helper()
	payload, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err := wsjson.Write(w.ctx, w.c, wsMessage{ID: id, Type: "subscribe", Payload: payload}); err != nil {
		w.t.Fatal(err)
	}
}

// send writes raw, a message as the client's own bytes, which may be
// anything a hostile client would send.
func (w *wsClient) send(raw string) {
	w.t.Helper()
	if err := w.c.Write(w.ctx, websocket.MessageText, []byte(raw)); err != nil {
		w.t.Fatal(err)
	}
}

// read returns the next message other than a ping, answering pings.
func (w *wsClient) read() wsMessage {
	w.t.Helper()
	for {
		var m wsMessage
		if err := wsjson.Read(w.ctx, w.c, &m); err != nil {
			w.t.Fatalf("read: %v", err)
		}
		if m.Type == "ping" {
			_ = wsjson.Write(w.ctx, w.c, wsMessage{Type: "pong"})
			continue
		}
		return m
	}
}

type liveEvent struct {
	ID, Type, Source, LiveCursor string
	UserAgent                    *string
	Actor                        struct{ Email string }
}

// nextEvent reads the next message of subscription id, which must be an event.
func (w *wsClient) nextEvent(id string) liveEvent {
	w.t.Helper()
	m := w.read()
	if m.Type != "next" || m.ID != id {
		w.t.Fatalf("want next for %s, got %s %s %s", id, m.Type, m.ID, m.Payload)
	}
	var p struct {
		Data   struct{ AuditEventRecorded liveEvent }
		Errors []testenv.GraphQLError
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) > 0 {
		w.t.Fatalf("payload %s: %v", m.Payload, err)
	}
	return p.Data.AuditEventRecorded
}

// errorCode reads the next message, which must end subscription id with an
// error, and returns its code.
func (w *wsClient) errorCode(id string) string {
	w.t.Helper()
	m := w.read()
	var errs []testenv.GraphQLError
	switch m.Type {
	case "error":
		_ = json.Unmarshal(m.Payload, &errs)
	case "next":
		// An error when the subscription starts comes as a result with
		// errors, then complete.
		var p struct{ Errors []testenv.GraphQLError }
		_ = json.Unmarshal(m.Payload, &p)
		errs = p.Errors
		if c := w.read(); c.Type != "complete" || c.ID != id {
			w.t.Fatalf("want complete for %s, got %s %s", id, c.Type, c.ID)
		}
	}
	if m.ID != id || len(errs) != 1 {
		w.t.Fatalf("want one error for %s, got %s %s %s", id, m.Type, m.ID, m.Payload)
	}
	return errs[0].Code()
}

// waitActive waits until the server serves n live subscriptions.
func waitActive(t *testing.T, env *testenv.Env, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for env.Feed().Active() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d live subscriptions, want %d", env.Feed().Active(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func vmEvent(org, email string) map[string]any {
	e := userCreated(org, time.Now(), email)
	e["source"] = "INSIGHT_VM"
	return e
}

func TestLiveDeliversMatchingEventsInOrder(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	env.WaitProjected(t)

	w := connectWS(t, env, testenv.AdminToken(t, "acme"))
	w.subscribe("s1", liveSubscription, map[string]any{"f": map[string]any{
		"sources": []string{"INSIGHT_VM"}, "categories": []string{"USER"}, "search": "ALPHA",
	}})
	waitActive(t, env, 1)

	var events, want []map[string]any
	for i := range 12 {
		var e map[string]any
		switch i % 4 {
		case 0: // matches
			e = vmEvent("acme", fmt.Sprintf("alpha%d@example.com", i))
		case 1: // wrong source
			e = userCreated("acme", time.Now(), fmt.Sprintf("alpha%d@example.com", i))
		case 2: // no search match
			e = vmEvent("acme", fmt.Sprintf("beta%d@example.com", i))
		case 3: // wrong category
			e = ev("acme", "API_KEY_CREATED", "INSIGHT_VM", time.Now(),
				map[string]any{"apiKeyId": "k", "apiKeyName": "alpha key"}, nil)
		}
		if i%4 == 0 {
			want = append(want, e)
		}
		events = append(events, e)
	}
	// Two batches, so order across appends is covered too.
	mustRecord(t, env, events[:6])
	mustRecord(t, env, events[6:])
	sentinel := vmEvent("acme", "alpha-last@example.com")
	mustRecord(t, env, []map[string]any{sentinel})
	want = append(want, sentinel)

	for i, e := range want {
		got := w.nextEvent("s1")
		if got.ID != e["id"] {
			t.Fatalf("event %d: got %s (%s), want %s", i, got.ID, got.Actor.Email, e["id"])
		}
		if got.Source != "INSIGHT_VM" || got.Type != "USER_CREATED" || got.LiveCursor == "" {
			t.Fatalf("event %d: %+v", i, got)
		}
	}
}

func TestLiveIsolationAndLimits(t *testing.T) {
	env := testenv.Start(t, func(c *server.Config) { c.Live = live.Limits{PerConnection: 2, PerOrg: 3} })
	env.EnableOrg(t, "acme", domain.RegionUS)
	env.EnableOrg(t, "globex", domain.RegionUS) // same region, same stream
	env.WaitProjected(t)                        // the opt-in events are not what this test reads

	a1 := connectWS(t, env, testenv.AdminToken(t, "acme"))
	a1.subscribe("1", liveSubscription, nil)
	a1.subscribe("2", liveSubscription, nil)
	waitActive(t, env, 2) // subscriptions start concurrently: settle before the third
	a1.subscribe("3", liveSubscription, nil)
	if code := a1.errorCode("3"); code != "RATE_LIMITED" {
		t.Fatalf("third subscription on one connection: %s", code)
	}
	a2 := connectWS(t, env, testenv.AdminToken(t, "acme"))
	a2.subscribe("1", liveSubscription, nil)
	waitActive(t, env, 3)
	a3 := connectWS(t, env, testenv.AdminToken(t, "acme"))
	a3.subscribe("1", liveSubscription, nil)
	if code := a3.errorCode("1"); code != "RATE_LIMITED" {
		t.Fatalf("fourth subscription of the org: %s", code)
	}
	// Another organization has its own allowance.
	g := connectWS(t, env, testenv.AdminToken(t, "globex"))
	g.subscribe("g", liveSubscription, nil)
	waitActive(t, env, 4)

	// globex records first; acme's subscribers must see only acme's event.
	theirs := vmEvent("globex", "secret@globex.example")
	mustRecord(t, env, []map[string]any{theirs})
	mine := vmEvent("acme", "mine@acme.example")
	mustRecord(t, env, []map[string]any{mine})
	// Both subscriptions of a1 get it, in either order.
	subs := map[string]bool{}
	for range 2 {
		m := a1.read()
		if m.Type != "next" || !strings.Contains(string(m.Payload), mine["id"].(string)) {
			t.Fatalf("acme subscriber got %s %s", m.Type, m.Payload)
		}
		subs[m.ID] = true
	}
	if !subs["1"] || !subs["2"] {
		t.Fatalf("deliveries went to %v", subs)
	}
	if got := a2.nextEvent("1"); got.ID != mine["id"] {
		t.Fatalf("acme subscriber got %+v", got)
	}
	if got := g.nextEvent("g"); got.ID != theirs["id"] {
		t.Fatalf("globex got %+v", got)
	}

	// Closing a connection gives its subscriptions back to the org.
	a1.c.Close(websocket.StatusNormalClosure, "")
	waitActive(t, env, 2)
	a3.subscribe("2", liveSubscription, nil)
	waitActive(t, env, 3)

	// A USER (not an admin) and a service cannot subscribe.
	for name, token := range map[string]string{
		"user":    testenv.UserToken(t, "acme"),
		"service": testenv.ServiceToken(t),
	} {
		c := connectWS(t, env, token)
		c.subscribe("x", liveSubscription, nil)
		if code := c.errorCode("x"); code != "FORBIDDEN" {
			t.Fatalf("%s: %s", name, code)
		}
	}
}

func TestLiveResumesAfterReconnect(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionEU)
	filter := map[string]any{"sources": []string{"INSIGHT_VM"}}

	w := connectWS(t, env, testenv.AdminToken(t, "acme"))
	w.subscribe("s", liveSubscription, map[string]any{"f": filter})
	waitActive(t, env, 1)
	var sent []map[string]any
	for i := range 3 {
		sent = append(sent, vmEvent("acme", fmt.Sprintf("before%d@example.com", i)))
	}
	mustRecord(t, env, sent)
	var last liveEvent
	for range sent {
		last = w.nextEvent("s")
	}
	w.c.Close(websocket.StatusNormalClosure, "network blip")
	waitActive(t, env, 0)

	// Missed while away: matching events and some that do not match.
	var missed []map[string]any
	for i := range 4 {
		e := vmEvent("acme", fmt.Sprintf("away%d@example.com", i))
		missed = append(missed, e)
		mustRecord(t, env, []map[string]any{e, userCreated("acme", time.Now(), "other@example.com")})
	}

	w = connectWS(t, env, testenv.AdminToken(t, "acme"))
	w.subscribe("s", liveSubscription, map[string]any{"f": filter, "after": last.LiveCursor})
	for i, e := range missed {
		if got := w.nextEvent("s"); got.ID != e["id"] {
			t.Fatalf("replayed event %d: got %s, want %s", i, got.ID, e["id"])
		}
	}
	// Then it is live again.
	now := vmEvent("acme", "now@example.com")
	mustRecord(t, env, []map[string]any{now})
	if got := w.nextEvent("s"); got.ID != now["id"] {
		t.Fatalf("live after replay: got %s", got.ID)
	}

	for _, bad := range []string{"nope", "bGl2ZTp4", last.ID} {
		w.subscribe("bad", liveSubscription, map[string]any{"after": bad})
		if code := w.errorCode("bad"); code != "BAD_USER_INPUT" {
			t.Fatalf("after %q: %s", bad, code)
		}
	}
}

func TestLiveRefusesForeignOrigins(t *testing.T) {
	env := testenv.Start(t, func(c *server.Config) { c.AllowedOrigins = []string{"app.example.com"} })
	wsURL := strings.Replace(env.URL, "http", "ws", 1) + "/query"
	for origin, ok := range map[string]bool{
		"":                        true, // not a browser
		env.URL:                   true, // same origin
		"https://app.example.com": true,
		"https://evil.example":    false,
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		c, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
			Subprotocols: []string{"graphql-transport-ws"}, HTTPHeader: h,
		})
		cancel()
		if ok != (err == nil) {
			t.Errorf("origin %q: err %v", origin, err)
		}
		if err == nil {
			c.CloseNow()
		} else if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %q: want 403, got %v", origin, resp)
		}
	}
}

func TestLiveDropsSlowConsumerWithoutStallingOthers(t *testing.T) {
	// A second: long enough that a busy test machine never starves the
	// fast reader that long, short enough to drop the slow one quickly.
	env := testenv.Start(t, func(c *server.Config) { c.Live = live.Limits{Stall: time.Second} })
	env.EnableOrg(t, "acme", domain.RegionUS)
	env.WaitProjected(t)

	slow := connectWS(t, env, testenv.AdminToken(t, "acme"))
	slow.subscribe("slow", liveSubscription, nil)
	fast := connectWS(t, env, testenv.AdminToken(t, "acme"))
	fast.subscribe("fast", liveSubscription, nil)
	waitActive(t, env, 2)

	received := make(chan string, 100_000)
	go func() {
		for {
			var m wsMessage
			if err := wsjson.Read(fast.ctx, fast.c, &m); err != nil {
				close(received)
				return
			}
			if m.Type == "next" {
				received <- m.ID
			}
		}
	}()

	// The slow client reads nothing while big events pile up until its
	// socket buffers fill and the server drops it; bounded by batches.
	agent := strings.Repeat("x", 1000)
	sent := 0
	for batch := 0; batch < 40 && env.Feed().Active() == 2; batch++ {
		events := make([]map[string]any, 1000)
		for i := range events {
			events[i] = vmEvent("acme", "bulk@example.com")
			events[i]["userAgent"] = agent
		}
		mustRecord(t, env, events)
		sent += len(events)
	}
	waitActive(t, env, 1)

	// The fast subscriber got every event.
	for i := range sent {
		select {
		case <-received:
		case <-time.After(10 * time.Second):
			t.Fatalf("fast subscriber stalled after %d of %d events", i, sent)
		}
	}
	// The slow one, reading again, finds a prefix of the events and then
	// the reason it was dropped.
	n := 0
	for {
		m := slow.read()
		if m.Type == "next" {
			n++
			continue
		}
		var errs []testenv.GraphQLError
		_ = json.Unmarshal(m.Payload, &errs)
		if m.Type != "error" || m.ID != "slow" || len(errs) != 1 || errs[0].Code() != "SLOW_CONSUMER" {
			t.Fatalf("after %d events: %s %s", n, m.Type, m.Payload)
		}
		break
	}
	if n == 0 || n >= sent {
		t.Fatalf("slow subscriber got %d of %d events before the drop", n, sent)
	}
	t.Logf("slow subscriber dropped after %d of %d events", n, sent)
}
