package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	coderws "github.com/coder/websocket"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/live"
)

// Websocket settings.
const (
	// wsForbidden is graphql-transport-ws's close code for a refused
	// connection_init.
	wsForbidden = 4403
	// wsBadMessage is graphql-transport-ws's close code for a message it
	// cannot take.
	wsBadMessage = 4400
	// wsPing is how often the server pings; a client that does not answer
	// within two pings is disconnected.
	wsPing = 15 * time.Second
	// wsInitTimeout bounds the wait for connection_init.
	wsInitTimeout = 10 * time.Second
	// wsShutdownReason tells clients why the server closed them at shutdown.
	wsShutdownReason = "server is shutting down; reconnect and resubscribe with after"
)

// websocket is the graphql-transport-ws transport (and the legacy graphql-ws
// one, which gqlgen speaks too). Connections authenticate in connection_init,
// come only from allowed origins, are pinged, and are closed when a write
// stalls longer than writeTimeout, so a client that stops reading cannot
// hold the server.
func (s *API) websocket() transport.Websocket {
	return transport.Websocket{
		Implementation: timedWebsocket{
			inner: transport.CoderWebsocketImplementation{AcceptOptions: coderws.AcceptOptions{
				// Empty means same origin only: coder/websocket refuses a
				// browser page of another origin (CSWSH).
				OriginPatterns: s.cfg.AllowedOrigins,
			}},
			writeTimeout: s.cfg.WebsocketWriteTimeout,
		},
		InitFunc: func(ctx context.Context, p transport.InitPayload) (context.Context, *transport.InitPayload, error) {
			ctx = s.cfg.Verifier.WithToken(ctx, auth.BearerToken(p.Authorization()))
			if _, err := auth.FromContext(ctx); err != nil {
				ctx = transport.AppendCloseReason(ctx, err.Error())
				return transport.WithWebsocketCloseCode(ctx, wsForbidden), nil, err
			}
			// The connection's context ends only when the server shuts down
			// or the client goes; say which to the client that is still there.
			ctx = transport.AppendCloseReason(ctx, wsShutdownReason)
			return live.WithConnection(ctx), nil, nil
		},
		InitTimeout:           wsInitTimeout,
		KeepAlivePingInterval: wsPing, // graphql-ws
		PingPongInterval:      wsPing, // graphql-transport-ws
	}
}

// timedWebsocket wraps a websocket implementation so that every write has a
// deadline: gqlgen writes without one.
type timedWebsocket struct {
	inner        transport.WebsocketImplementation
	writeTimeout time.Duration
}

func (t timedWebsocket) Accept(w http.ResponseWriter, r *http.Request, o transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	c, err := t.inner.Accept(w, r, o)
	if err != nil {
		return nil, err
	}
	return &timedConn{WebsocketConn: c, timeout: t.writeTimeout}, nil
}

type timedConn struct {
	transport.WebsocketConn
	timeout time.Duration
}

var (
	_ transport.WebsocketReadLimiter   = (*timedConn)(nil)
	_ transport.WebsocketReadDeadliner = (*timedConn)(nil)
)

// WriteJSON closes the connection if the write does not finish in time,
// which fails the write and ends every subscription of the connection.
func (c *timedConn) WriteJSON(v any) error {
	t := time.AfterFunc(c.timeout, func() { _ = c.Close() })
	defer t.Stop()
	return c.WebsocketConn.WriteJSON(v)
}

func (c *timedConn) SetReadLimit(limit int64) {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(limit)
	}
}

func (c *timedConn) SetReadDeadline(d time.Time) error {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return l.SetReadDeadline(d)
	}
	return nil
}

// NextReader hands gqlgen only messages that read one way: each is checked
// as the HTTP body is (valid UTF-8, no lone surrogate escape, no key twice)
// before gqlgen's decoder, which would keep one of two keys and turn a lone
// surrogate into U+FFFD. A refused operation is answered with an error
// carrying extensions.code for its id, and the connection reads on; any
// other refused message closes the connection with 4400.
func (c *timedConn) NextReader() (int, io.Reader, error) {
	for {
		typ, r, err := c.WebsocketConn.NextReader()
		if err != nil {
			return typ, r, err
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return typ, nil, err
		}
		bad := checkJSONBody("", data)
		if bad == nil {
			return typ, bytes.NewReader(data), nil
		}
		var m struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		}
		_ = json.Unmarshal(data, &m)
		if m.ID == "" || (m.Type != "subscribe" && m.Type != "start") {
			reason := bad.Error()
			if len(reason) > 120 { // a close frame's reason is at most 123 bytes
				reason = reason[:120]
			}
			_ = c.WriteClose(wsBadMessage, reason)
			return typ, nil, bad
		}
		payload := []map[string]any{{"message": bad.Error(), "extensions": map[string]any{"code": domain.CodeOf(bad)}}}
		if err := c.WriteJSON(map[string]any{"id": m.ID, "type": "error", "payload": payload}); err != nil {
			return typ, nil, err
		}
	}
}
