package server

import (
	"bytes"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/auditlog/auditlog/domain"
)

// textOnly refuses a /query request whose body or query string is not
// valid UTF-8, before any decoder sees it: JSON decoders replace invalid
// bytes with U+FFFD, which would store something the client never sent.
// It runs after limitBody, so the body it reads is bounded.
func textOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, vs := range r.URL.Query() {
			for _, v := range vs {
				if !utf8.ValidString(v) {
					writeError(w, r, domain.BadInput("", "the query string is not valid UTF-8"))
					return
				}
			}
		}
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			writeError(w, r, domain.BadInput("", "could not read the request body: %v", err))
			return
		}
		if err := domain.CheckBody(body); err != nil {
			writeError(w, r, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}
