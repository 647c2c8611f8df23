package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/graph"
)

func (s *Server) routes(resolver *graph.Resolver) http.Handler {
	es := graph.NewSchema(resolver)
	limits := queryLimits()
	gql := handler.New(es)
	gql.AddTransport(getTransport{transport.GET{}})
	gql.AddTransport(transport.POST{})
	gql.AddTransport(s.websocket())
	gql.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	if s.cfg.Introspection {
		gql.Use(extension.Introspection{})
	}
	// Persisted queries first: the cost limit measures the query a hash
	// stands for. The cache stores no query longer than the limit allows.
	gql.Use(extension.AutomaticPersistedQuery{Cache: apqCache{kv: s.apq, max: limits.Bytes}})
	// Then the cost limit, so that nothing else runs for a request it refuses.
	gql.Use(costLimit{schema: es.Schema(), limits: limits, weights: graph.CostWeights(), timeout: s.cfg.RequestTimeout})
	gql.Use(queryText{})
	gql.SetParserTokenLimit(limits.Tokens)
	gql.Use(extension.FixedComplexityLimit(maxComplexity))
	gql.AroundResponses(deadline(s.cfg.RequestTimeout))
	gql.AroundResponses(responseLimit(s.cfg.MaxResponseBytes, graph.ErrorPresenter()))
	gql.AroundFields(graph.MarkInternal)
	gql.SetErrorPresenter(graph.ErrorPresenter())
	gql.SetRecoverFunc(graph.Recover())

	mux := http.NewServeMux()
	mux.Handle("/query", cors(s.cfg.AllowedOrigins, limitBody(s.cfg.MaxRequestBytes, textOnly(s.cfg.Verifier.Middleware(withRequest(requestErrors(gql)))))))
	pg := playground()
	mux.Handle("GET /console/", console())
	mux.Handle("GET /console", http.RedirectHandler("/console/", http.StatusMovedPermanently))
	for _, path := range []string{"GET /{$}", "GET /playground.js", "GET /playground.css"} {
		mux.Handle(path, pg)
	}
	mux.Handle("OPTIONS "+downloadPath+"{id}", cors(s.cfg.AllowedOrigins, http.NotFoundHandler()))
	mux.Handle("GET "+downloadPath+"{id}", cors(s.cfg.AllowedOrigins, s.cfg.Verifier.Middleware(withRequest(http.HandlerFunc(s.download)))))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		code, status := http.StatusOK, "ready"
		if err := s.Ready(ctx); err != nil {
			code, status = http.StatusServiceUnavailable, err.Error()
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(struct {
			Status      string             `json:"status"`
			Projections []ProjectionHealth `json:"projections"`
		}{status, s.Projections()})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	return requestLog(s.log, s.metrics, mux)
}

// limitBody refuses a request body over max bytes with 413, before any of
// it is decoded: gqlgen reads a body whole, so without a bound one request
// could take all the memory there is. A declared length is checked at once
// (net/http never reads past it); a chunked body is read up to max+1.
func limitBody(max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			writeTooLarge(w, r, max)
			return
		}
		if r.ContentLength < 0 {
			body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
			if err != nil {
				writeError(w, r, domain.BadInput("", "could not read the request body: %v", err))
				return
			}
			if int64(len(body)) > max {
				writeTooLarge(w, r, max)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
}

func writeTooLarge(w http.ResponseWriter, r *http.Request, max int64) {
	w.Header().Set("Connection", "close") // the rest of the body is not read
	writeErrorStatus(w, r, http.StatusRequestEntityTooLarge,
		domain.BadInput("", "the request body is larger than %d bytes; send fewer events per call", max))
}

func writeStatus(w http.ResponseWriter, code int, status string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": status})
}

// deadline bounds one query or mutation to d from the start of the request,
// parsing and validation included (costLimit refuses one already late
// before either); the deadline reaches SQL through the context, which
// cancels the statement, and the request's context ends the work of a
// client that disconnects. Each event of a subscription gets d of its own.
// It wraps execution rather than the HTTP request so a late request still
// gets a GraphQL error, not an empty body.
func deadline(d time.Duration) graphql.ResponseMiddleware {
	return func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		end := time.Now().Add(d)
		if graphql.HasOperationContext(ctx) {
			if op := graphql.GetOperationContext(ctx); op.Operation == nil || op.Operation.Operation != ast.Subscription {
				end = op.Stats.OperationStart.Add(d)
			}
		}
		ctx, cancel := context.WithDeadline(ctx, end)
		defer cancel()
		return next(ctx)
	}
}

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestLog gives each request an id (the client's X-Request-Id when it is
// sane), a logger carrying it, one access log line and its metrics. Headers,
// and so tokens, are never logged.
func requestLog(log zerolog.Logger, m *metrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !requestIDPattern.MatchString(id) {
			id = ulid.Make().String()
		}
		w.Header().Set("X-Request-Id", id)
		l := log.With().Str("request_id", id).Logger()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		req := r.WithContext(l.WithContext(r.Context()))
		next.ServeHTTP(rec, req)
		took := time.Since(start)
		m.observe(req.Pattern, rec.status, took) // the mux set the pattern it matched
		l.Info().Str("method", r.Method).Str("path", r.URL.Path).Int("status", rec.status).
			Dur("duration", took).Msg("request")
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// getTransport is gqlgen's GET transport, answering a mutation over GET with
// 405 Method Not Allowed as GraphQL over HTTP prescribes (gqlgen says 406).
type getTransport struct{ transport.GET }

func (t getTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	t.GET.Do(&methodNotAllowed{ResponseWriter: w}, r, exec)
}

type methodNotAllowed struct{ http.ResponseWriter }

func (m *methodNotAllowed) WriteHeader(code int) {
	if code == http.StatusNotAcceptable {
		m.Header().Set("Allow", "POST")
		code = http.StatusMethodNotAllowed
	}
	m.ResponseWriter.WriteHeader(code)
}
