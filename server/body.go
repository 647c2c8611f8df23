package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/auditlog/auditlog/domain"
)

func isJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == mediaJSON
}

// textOnly refuses a /query request whose body or query string is not
// valid UTF-8, before any decoder sees it: JSON decoders replace invalid
// bytes with U+FFFD, which would store something the client never sent.
// It runs after limitBody, so the body it reads is bounded.
func textOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, vs := range r.URL.Query() {
			for _, v := range vs {
				if !utf8.ValidString(v) {
					writeRequestError(w, r, domain.BadInput("", "the query string is not valid UTF-8"))
					return
				}
				// GET carries its variables as JSON text: the same check.
				if k == "variables" || k == "extensions" {
					if err := checkJSONBody(k, []byte(v)); err != nil {
						writeRequestError(w, r, err)
						return
					}
				}
			}
		}
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			writeRequestError(w, r, domain.BadInput("", "could not read the request body: %v", err))
			return
		}
		// A JSON body is checked below, naming the field at fault.
		if err := domain.CheckBody(body); err != nil && !isJSON(r) {
			writeRequestError(w, r, err)
			return
		}
		if !utf8.Valid(body) {
			writeRequestError(w, r, domain.CheckBody(body))
			return
		}
		// gqlgen would quote the whole body back in its error.
		if isJSON(r) && !json.Valid(body) {
			writeRequestError(w, r, domain.BadInput("", "the request body is not valid JSON"))
			return
		}
		// A key given twice would be read as its last value by gqlgen and
		// as something else by another reader: refuse it, naming it.
		if isJSON(r) {
			if err := checkJSONBody("", body); err != nil {
				writeRequestError(w, r, err)
				return
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// checkJSONBody refuses JSON text that readers could read differently:
// a lone surrogate escape or a key given twice, naming where. A NUL is left
// to the checks of each field, which name the event it is in.
func checkJSONBody(field string, data []byte) error {
	return domain.CheckJSONRequest(field, data)
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
	if err := domain.CheckQueryText(p.Query); err != nil {
		return &gqlerror.Error{Message: err.Error(), Err: err,
			Extensions: map[string]any{"code": string(domain.CodeOf(err))}}
	}
	return nil
}
