package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
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

	"github.com/auditlog/auditlog/graph"
	"github.com/auditlog/auditlog/httpapi/gqlguard"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/reads"
)

func (s *API) routes(es graphql.ExecutableSchema) http.Handler {
	limits := gqlguard.QueryLimits()
	gql := handler.New(es)
	gql.AddTransport(getTransport{transport.GET{}})
	gql.AddTransport(transport.POST{})
	gql.AddTransport(s.websocket())
	gql.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	if s.cfg.Introspection {
		gql.Use(extension.Introspection{})
	}
	// Persisted queries first: the cost limit measures the query a hash
	// stands for.
	gql.Use(gqlguard.NewPersistedQueries(s.apq, natsx.MaxAPQQueryBytes, s.metrics))
	// Then the cost limit, so that nothing else runs for a request it refuses.
	gql.Use(gqlguard.NewCostLimit(es.Schema(), limits, graph.CostWeights(), s.cfg.RequestTimeout))
	gql.Use(queryText{})
	gql.SetParserTokenLimit(limits.Tokens)
	gql.Use(extension.FixedComplexityLimit(gqlguard.MaxComplexity))
	gql.AroundResponses(deadline(s.cfg.RequestTimeout))
	gql.AroundResponses(gqlguard.ResponseLimit(s.cfg.MaxResponseBytes, graph.ErrorPresenter()))
	gql.AroundFields(graph.MarkInternal)
	gql.SetErrorPresenter(graph.ErrorPresenter())
	gql.SetRecoverFunc(graph.Recover())

	mux := http.NewServeMux()
	// The token is verified before a byte of the body is read: it decides
	// how large a body may be.
	budget := newBodyBudget(s.cfg.BodyBudget, s.cfg.BodyWait)
	s.metrics.registerBudget(budget)
	s.metrics.registry.MustRegister(newStorageCollector(s))
	mux.Handle("/query", cors(s.cfg.AllowedOrigins, s.cfg.Verifier.Middleware(
		bodies(s.cfg.MaxRequestBytes, budget, s.metrics, withRequest(gqlguard.RequestErrors(gql))))))
	pg := playground()
	mux.Handle("GET /console/", console())
	mux.Handle("GET /console", http.RedirectHandler("/console/", http.StatusMovedPermanently))
	for _, path := range []string{"GET /{$}", "GET /playground.js", "GET /playground.css"} {
		mux.Handle(path, pg)
	}
	mux.Handle("OPTIONS "+DownloadPath+"{id}", cors(s.cfg.AllowedOrigins, http.NotFoundHandler()))
	mux.Handle("GET "+DownloadPath+"{id}", cors(s.cfg.AllowedOrigins, s.cfg.Verifier.Middleware(withRequest(http.HandlerFunc(s.download)))))
	s.tlogRoutes(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		code, status := http.StatusOK, "ready"
		// Storage is shared by every instance: running out of it is the
		// deployment's problem, which must not take a healthy instance out.
		storage := s.storage(ctx)
		problem, warnings := storage.assess()
		if err := s.Ready(ctx); err != nil {
			code, status = http.StatusServiceUnavailable, err.Error()
		}
		type cluster struct {
			Status   string   `json:"status"`
			Problems []string `json:"problems"`
		}
		c := cluster{Status: "ok", Problems: s.Problems()}
		if problem != "" {
			c.Problems = append(c.Problems, problem)
		}
		c.Problems = append(c.Problems, warnings...)
		if len(c.Problems) > 0 {
			c.Status = "degraded"
		} else {
			c.Problems = []string{}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(struct {
			Status      string        `json:"status"`
			Cluster     cluster       `json:"cluster"`
			Storage     StorageHealth `json:"storage"`
			Projections any           `json:"projections"`
		}{status, c, storage, s.Projections()})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	return requestLog(s.log, s.metrics, mux)
}

func writeStatus(w http.ResponseWriter, code int, status string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": status})
}

// deadline bounds one query or mutation to d from the start of the request,
// parsing and validation included (gqlguard.CostLimit refuses one already late
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

// withRequest tells the resolvers the origin the request came to, which
// makes the links they hand out absolute, and who sent it, which read
// events record.
func withRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme := "http"
		if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
			scheme = "https"
		}
		ctx := graph.WithOrigin(r.Context(), scheme+"://"+r.Host)
		ctx = reads.WithClient(ctx, r.RemoteAddr, r.UserAgent(), w.Header().Get("X-Request-Id"))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
