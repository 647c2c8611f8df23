package httpapi

import (
	"embed"
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
	return embeddedPages(consoleFiles, "console", "/console", http.Header{"Cache-Control": {"no-cache"}},
		func(r *http.Request) string { return consoleCSP(r.Host) })
}
