package httpapi

import (
	"embed"
	"io/fs"
	"net/http"
)

// playgroundFiles is the GraphQL playground served at /: a page of our own
// with no third-party code, so it works offline and on locked-down
// networks, and never loads anything from another host.
//
//go:embed playground
var playgroundFiles embed.FS

// playground serves the playground's files with a policy that forbids the
// page from reaching any host but this one.
func playground() http.Handler {
	return embeddedPages(playgroundFiles, "playground", "", nil,
		func(*http.Request) string { return "default-src 'self'; frame-ancestors 'none'" })
}

// embeddedPages serves the files of dir in fsys, below the URL prefix strip,
// with the content security policy csp gives for the request, the headers
// every page of ours carries, and the headers in extra.
func embeddedPages(fsys fs.FS, dir, strip string, extra http.Header, csp func(*http.Request) string) http.Handler {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // dir is embedded in the binary
	}
	files := http.StripPrefix(strip, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp(r))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		for k, v := range extra {
			h[k] = v
		}
		files.ServeHTTP(w, r)
	})
}
