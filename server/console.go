package server

import (
	"embed"
	"io/fs"
	"net/http"
	"regexp"
)

// consoleFiles is the admin console served at /console/: plain JavaScript
// modules, a style sheet and one page, no third-party code and no build
// step, so make run needs no Node and the page never loads anything from
// another host.
//
//go:embed console
var consoleFiles embed.FS

// hostPattern is a Host header safe to name in a Content-Security-Policy.
var hostPattern = regexp.MustCompile(`^[A-Za-z0-9.\-\[\]:]{1,255}$`)

// consoleCSP is the console's policy: scripts, styles and requests only to
// this origin, and websockets only to this host. Browsers disagree on
// whether 'self' covers ws: and wss:, so they are named.
func consoleCSP(host string) string {
	connect := "connect-src 'self'"
	if hostPattern.MatchString(host) {
		connect += " ws://" + host + " wss://" + host
	}
	return "default-src 'self'; " + connect +
		"; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}

// console serves the console's files under /console/ with a strict policy.
func console() http.Handler {
	sub, err := fs.Sub(consoleFiles, "console")
	if err != nil {
		panic(err) // the directory is embedded above
	}
	files := http.StripPrefix("/console", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", consoleCSP(r.Host))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
