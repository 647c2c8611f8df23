package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"golang.org/x/sync/semaphore"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/httpapi/gqlguard"
	"github.com/auditlog/auditlog/textcheck"
)

// AnonymousMaxRequestBytes bounds the /query body of a request without a
// valid bearer token. No field of the API answers such a caller, so it
// needs no more than an ordinary query; the cap keeps a stranger from
// making the server read and decode megabytes for nothing.
const AnonymousMaxRequestBytes = 64 << 10

// DefaultBodyBudget is how many bytes of /query bodies all requests may hold
// in memory at once: two of the largest batches. Decoding a body costs a
// multiple of its size, so the budget bounds that too.
const DefaultBodyBudget = 2 * DefaultMaxRequestBytes

// DefaultBodyWait is how long a request waits for its share of the body
// budget before it is refused with 503, rather than queued for ever.
const DefaultBodyWait = 2 * time.Second

// bodyStep is the first share a body of undeclared length (chunked) takes
// of the budget; each further share doubles what it holds.
const bodyStep = 64 << 10

func isJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == gqlguard.MediaJSON
}

// bodyBudget is a weighted semaphore over the bytes of request bodies held
// in memory, so that N large requests at once cannot take more than size
// between them. inUse and peak are counted apart from the semaphore so the
// metrics (and the tests) see what was really held.
type bodyBudget struct {
	sem         *semaphore.Weighted
	size        int64
	wait        time.Duration
	inUse, peak atomic.Int64
}

func newBodyBudget(size int64, wait time.Duration) *bodyBudget {
	return &bodyBudget{sem: semaphore.NewWeighted(size), size: size, wait: wait}
}

// acquire takes n bytes of the budget, waiting at most b.wait; false means
// the budget stayed short or the client went away.
func (b *bodyBudget) acquire(ctx context.Context, n int64) bool {
	ctx, cancel := context.WithTimeout(ctx, b.wait)
	defer cancel()
	if err := b.sem.Acquire(ctx, n); err != nil {
		return false
	}
	now := b.inUse.Add(n)
	for {
		p := b.peak.Load()
		if now <= p || b.peak.CompareAndSwap(p, now) {
			return true
		}
	}
}

func (b *bodyBudget) release(n int64) {
	if n > 0 {
		b.inUse.Add(-n)
		b.sem.Release(n)
	}
}

// errBudget says a body could not get its share of the budget in time.
var errBudget = errors.New("body budget exhausted")

// errTooLarge says a body is over the caller's cap.
var errTooLarge = errors.New("body too large")

// bodies reads a /query request's body into memory before anything decodes
// it, within the caller's cap (AnonymousMaxRequestBytes without a valid
// token, authMax with one: it runs after the token is verified) and within
// the shared budget, and refuses text JSON decoders would alter. A body of
// declared length over the cap is refused before a byte of it is read; a
// chunked one as soon as it passes the cap. The budget share is held until
// the request is answered, since the decoded request lives that long.
func bodies(authMax int64, budget *bodyBudget, m *metrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, vs := range r.URL.Query() {
			for _, v := range vs {
				if !utf8.ValidString(v) {
					gqlguard.WriteRequestError(w, r, domain.BadInput("", "the query string is not valid UTF-8"))
					return
				}
				// GET carries its variables as JSON text: the same check.
				if k == "variables" || k == "extensions" {
					if err := checkJSONBody(k, []byte(v)); err != nil {
						gqlguard.WriteRequestError(w, r, err)
						return
					}
				}
			}
		}
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		limit, authErr := authMax, error(nil)
		if _, authErr = auth.FromContext(r.Context()); authErr != nil {
			limit = AnonymousMaxRequestBytes
		}
		body, held, err := readBody(w, r, limit, budget)
		defer budget.release(held)
		switch {
		case errors.Is(err, errTooLarge):
			m.bodyRefused(authErr != nil, "too_large")
			writeTooLarge(w, r, limit, authErr)
			return
		case errors.Is(err, errBudget):
			m.bodyRefused(authErr != nil, "budget")
			w.Header().Set("Retry-After", "1")
			writeErrorStatus(w, r, http.StatusServiceUnavailable, &domain.Error{Code: domain.CodeUnavailable,
				Message: "the server is reading as many request bodies as it has memory for; send the request again shortly"})
			return
		case err != nil:
			gqlguard.WriteRequestError(w, r, domain.BadInput("", "could not read the request body: %v", err))
			return
		}
		// A JSON body is checked below, naming the field at fault.
		if err := domain.TextInput(textcheck.Body(body)); err != nil && !isJSON(r) {
			gqlguard.WriteRequestError(w, r, err)
			return
		}
		if !utf8.Valid(body) {
			gqlguard.WriteRequestError(w, r, domain.TextInput(textcheck.Body(body)))
			return
		}
		// A key given twice would be read as its last value by gqlgen and
		// as something else by another reader: refuse it, naming it. What
		// the check passes is valid JSON (textcheck's FuzzJSON), so the
		// body is read once more only when it fails: not JSON at all is
		// said as such, since gqlgen would quote the whole body back in
		// its error.
		if isJSON(r) {
			if err := checkJSONBody("", body); err != nil {
				if !json.Valid(body) {
					err = domain.BadInput("", "the request body is not valid JSON")
				}
				gqlguard.WriteRequestError(w, r, err)
				return
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r)
	})
}

// readBody reads r's body, at most limit bytes, taking its size from budget
// before it reads: all of a declared length at once, a chunked body in
// doubling shares as it arrives. held is what it took, to release once
// the request is answered, also when it fails.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, budget *bodyBudget) (body []byte, held int64, err error) {
	if r.ContentLength > limit {
		return nil, 0, errTooLarge
	}
	// MaxBytesReader also tells net/http to close the connection rather
	// than drain a body the handler stopped reading.
	rd := http.MaxBytesReader(w, r.Body, limit)
	if n := r.ContentLength; n >= 0 {
		if !budget.acquire(r.Context(), n) {
			return nil, 0, errBudget
		}
		body = make([]byte, n)
		if _, err := io.ReadFull(rd, body); err != nil {
			return nil, n, err
		}
		return body, n, nil
	}
	for {
		if len(body) == cap(body) {
			if int64(len(body)) == limit {
				// Full: one byte more is one too many.
				var probe [1]byte
				if n, err := rd.Read(probe[:]); n > 0 || !errors.Is(err, io.EOF) {
					var tooLarge *http.MaxBytesError
					if n > 0 || errors.As(err, &tooLarge) {
						return nil, held, errTooLarge
					}
					return nil, held, err
				}
				return body, held, nil
			}
			grow := min(max(int64(cap(body)), bodyStep), limit-int64(cap(body)))
			if !budget.acquire(r.Context(), grow) {
				return nil, held, errBudget
			}
			held += grow
			body = append(make([]byte, 0, int64(cap(body))+grow), body...)
		}
		n, err := rd.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if errors.Is(err, io.EOF) {
			return body, held, nil
		}
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return nil, held, errTooLarge
			}
			return nil, held, err
		}
	}
}

// writeTooLarge answers 413. A caller without a valid token is told that
// its cap is the anonymous one and why its token was not accepted
// (UNAUTHENTICATED: a fresh token, not a smaller batch, is the remedy).
func writeTooLarge(w http.ResponseWriter, r *http.Request, limit int64, authErr error) {
	w.Header().Set("Connection", "close") // the rest of the body is not read
	var err error = domain.BadInput("", "the request body is larger than %d bytes; send fewer events per call", limit)
	if authErr != nil {
		err = &domain.Error{Code: domain.CodeUnauthenticated, Message: fmt.Sprintf(
			"the request body is larger than the %d bytes a request without a valid bearer token may send (%v)", limit, authErr)}
	}
	writeErrorStatus(w, r, http.StatusRequestEntityTooLarge, err)
}

// checkJSONBody refuses JSON text that readers could read differently:
// a lone surrogate escape or a key given twice, naming where. A NUL is left
// to the checks of each field, which name the event it is in.
func checkJSONBody(field string, data []byte) error {
	return domain.TextInput(textcheck.JSONRequest(field, data))
}

// queryText refuses a query whose text holds a lone surrogate escape in a
// literal, on every transport (HTTP and websocket) and for the query a
// persisted hash stands for; the lexer would store U+FFFD instead.
type queryText struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = queryText{}

func (queryText) ExtensionName() string                   { return "QueryText" }
func (queryText) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters checks the raw query text.
func (queryText) MutateOperationParameters(_ context.Context, p *graphql.RawParams) *gqlerror.Error {
	if err := domain.TextInput(textcheck.GraphQLQuery(p.Query)); err != nil {
		return &gqlerror.Error{Message: err.Error(), Err: err,
			Extensions: map[string]any{"code": string(domain.CodeOf(err))}}
	}
	return nil
}
