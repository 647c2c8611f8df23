package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
)

type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

func dialWS(t *testing.T, env *testenv.Env, token string) (*websocket.Conn, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	c, _, err := websocket.Dial(ctx, strings.Replace(env.URL, "http", "ws", 1)+"/query",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	payload, _ := json.Marshal(map[string]string{"Authorization": "Bearer " + token})
	if err := wsjson.Write(ctx, c, wsMessage{Type: "connection_init", Payload: payload}); err != nil {
		t.Fatal(err)
	}
	return c, ctx
}

func TestWebsocketAuthenticatesConnectionInit(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionEU)

	c, ctx := dialWS(t, env, testenv.AdminToken(t, "acme"))
	var ack wsMessage
	if err := wsjson.Read(ctx, c, &ack); err != nil || ack.Type != "connection_ack" {
		t.Fatalf("ack: %+v %v", ack, err)
	}
	q, _ := json.Marshal(map[string]string{"query": "{ auditLogSettings { enabled region } }"})
	if err := wsjson.Write(ctx, c, wsMessage{ID: "1", Type: "subscribe", Payload: q}); err != nil {
		t.Fatal(err)
	}
	var next wsMessage
	if err := wsjson.Read(ctx, c, &next); err != nil || next.Type != "next" ||
		!strings.Contains(string(next.Payload), `"region":"EU"`) {
		t.Fatalf("next: %+v %s %v", next, next.Payload, err)
	}

	for name, token := range map[string]string{"forged": "a.b.c", "missing": ""} {
		t.Run(name, func(t *testing.T) {
			c, ctx := dialWS(t, env, token)
			var m wsMessage
			err := wsjson.Read(ctx, c, &m)
			if websocket.CloseStatus(err) != 4403 {
				t.Fatalf("got message %+v, err %v; want close 4403", m, err)
			}
		})
	}
}
