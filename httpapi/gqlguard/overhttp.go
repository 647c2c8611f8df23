package gqlguard

import (
	"bytes"
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"strings"

	"github.com/auditlog/auditlog/domain"
)

// Media types of GraphQL over HTTP.
const (
	// MediaGraphQLResponse is the media type GraphQL over HTTP defines.
	MediaGraphQLResponse = "application/graphql-response+json"
	// MediaJSON is the media type every GraphQL client reads.
	MediaJSON = "application/json"
)

// ResponseMedia is the media type a /query answer takes:
// application/graphql-response+json when the client asks for it, else
// application/json, which every GraphQL client reads (GraphQL over HTTP
// makes it the default when Accept is missing or is */*). The two differ
// in how a request that never executed is answered.
func ResponseMedia(r *http.Request) string {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && mt == MediaGraphQLResponse {
			return MediaGraphQLResponse
		}
	}
	return MediaJSON
}

// RequestErrors makes gqlgen's answers to requests it could not execute
// (unparsable JSON or GraphQL, invalid documents or variables) follow
// GraphQL over HTTP: application/json answers are 200, since a client
// of that type reads the status only as a transport outcome, and neither
// kind carries a data entry, which only an executed request has.
func RequestErrors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			next.ServeHTTP(w, r) // hijacked; nothing to rewrite
			return
		}
		rw := &errorRewriter{ResponseWriter: w}
		next.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), notExecutedKey{}, &rw.notExecuted)))
		rw.finish()
	})
}

type notExecutedKey struct{}

// MarkNotExecuted tells RequestErrors that the request was refused before
// it executed, in a way gqlgen answers with 200 and "data": null (a
// persisted query not found, say): it is answered as the other requests
// that never execute are, without data, and with 400 under
// application/graphql-response+json.
func MarkNotExecuted(ctx context.Context) {
	if f, ok := ctx.Value(notExecutedKey{}).(*bool); ok {
		*f = true
	}
}

// errorRewriter holds back a 4xx answer until it can rewrite it.
type errorRewriter struct {
	http.ResponseWriter
	status      int
	held        bool
	buf         bytes.Buffer
	notExecuted bool
}

func (e *errorRewriter) WriteHeader(code int) {
	if code == http.StatusOK && e.notExecuted {
		code = http.StatusBadRequest // finish answers application/json with 200
	}
	// 405 (a mutation over GET) and 413 are about the HTTP request itself.
	if code >= 400 && code < 500 && code != http.StatusMethodNotAllowed && code != http.StatusRequestEntityTooLarge {
		e.status, e.held = code, true
		return
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *errorRewriter) Write(b []byte) (int, error) {
	if e.held {
		return e.buf.Write(b)
	}
	return e.ResponseWriter.Write(b)
}

func (e *errorRewriter) Unwrap() http.ResponseWriter { return e.ResponseWriter }

func (e *errorRewriter) finish() {
	if !e.held {
		return
	}
	var body struct {
		Errors json.RawMessage `json:"errors"`
	}
	status := e.status
	if strings.HasPrefix(e.Header().Get("Content-Type"), MediaJSON) {
		status = http.StatusOK
	}
	if err := json.Unmarshal(e.buf.Bytes(), &body); err != nil || len(body.Errors) == 0 {
		e.ResponseWriter.WriteHeader(e.status)
		_, _ = e.ResponseWriter.Write(e.buf.Bytes())
		return
	}
	out, _ := json.Marshal(body)
	e.Header().Del("Content-Length")
	e.ResponseWriter.WriteHeader(status)
	_, _ = e.ResponseWriter.Write(append(out, '\n'))
}

// WriteRequestError answers a /query request refused before gqlgen saw it
// because its body is not JSON text at all: that is no GraphQL request, so
// it is 400 whatever the media type.
func WriteRequestError(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("Content-Type", ResponseMedia(r))
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{
		"message": err.Error(), "extensions": map[string]string{"code": string(domain.CodeOf(err))},
	}}})
}
