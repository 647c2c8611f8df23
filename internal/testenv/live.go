package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
)

// LiveSubscription asks for each event recorded from now, or after the
// event whose liveCursor is $after.
const LiveSubscription = `subscription($f: AuditEventFilter, $after: String) {
  auditEventRecorded(filter: $f, after: $after) { id type liveCursor details }
}`

// LiveEvent is one event a LiveSubscription delivers.
type LiveEvent struct {
	ID, Type, LiveCursor string
	Details              map[string]any
}

// Live is a graphql-transport-ws client of one subscription, over a real
// websocket to a process or server at a base URL.
type Live struct {
	t   testing.TB
	c   *websocket.Conn
	ctx context.Context
}

type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Subscribe connects to baseURL with token and starts LiveSubscription
// with filter and after ("" for none). Reads give up after timeout.
func Subscribe(t testing.TB, baseURL, token string, filter map[string]any, after string, timeout time.Duration) (*Live, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	c, _, err := websocket.Dial(ctx, strings.Replace(baseURL, "http", "ws", 1)+"/query",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.CloseNow() })
	l := &Live{t: t, c: c, ctx: ctx}
	auth, _ := json.Marshal(map[string]string{"Authorization": "Bearer " + token})
	if err := wsjson.Write(ctx, c, wsMessage{Type: "connection_init", Payload: auth}); err != nil {
		return nil, err
	}
	if m, err := l.read(); err != nil || m.Type != "connection_ack" {
		return nil, fmt.Errorf("want connection_ack, got %+v (%v)", m, err)
	}
	vars := map[string]any{"f": filter}
	if after != "" {
		vars["after"] = after
	}
	payload, _ := json.Marshal(map[string]any{"query": LiveSubscription, "variables": vars})
	if err := wsjson.Write(ctx, c, wsMessage{ID: "1", Type: "subscribe", Payload: payload}); err != nil {
		return nil, err
	}
	return l, nil
}

// read returns the next message other than a ping, answering pings.
func (l *Live) read() (wsMessage, error) {
	for {
		var m wsMessage
		if err := wsjson.Read(l.ctx, l.c, &m); err != nil {
			return m, err
		}
		if m.Type != "ping" {
			return m, nil
		}
		if err := wsjson.Write(l.ctx, l.c, wsMessage{Type: "pong"}); err != nil {
			return m, err
		}
	}
}

// Next is the next event, or an error when the connection ends or the
// subscription ends with anything but an event.
func (l *Live) Next() (LiveEvent, error) {
	m, err := l.read()
	if err != nil {
		return LiveEvent{}, err
	}
	if m.Type != "next" {
		return LiveEvent{}, fmt.Errorf("want next, got %s %s", m.Type, m.Payload)
	}
	var p struct {
		Data   struct{ AuditEventRecorded LiveEvent }
		Errors []GraphQLError
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		return LiveEvent{}, err
	}
	if len(p.Errors) > 0 {
		return LiveEvent{}, fmt.Errorf("subscription error: %s", m.Payload)
	}
	return p.Data.AuditEventRecorded, nil
}
