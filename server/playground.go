package server

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
	sub, err := fs.Sub(playgroundFiles, "playground")
	if err != nil {
		panic(err) // the directory is embedded above
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		files.ServeHTTP(w, r)
	})
}
