package server

import (
	"context"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	coderws "github.com/coder/websocket"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/live"
)

// Websocket settings.
const (
	// wsForbidden is graphql-transport-ws's close code for a refused
	// connection_init.
	wsForbidden = 4403
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
func (s *Server) websocket() transport.Websocket {
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
