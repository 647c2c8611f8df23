package httpapi

import (
	"net/http"
	"net/url"
	"path"
	"strings"
)

// CORS settings of the API for browser pages of other origins.
const (
	corsMethods = "GET, POST"
	corsHeaders = "Authorization, Content-Type"
	// corsMaxAge lets a browser reuse a preflight's answer for 10 minutes.
	corsMaxAge = "600"
)

// originAllowed reports whether a browser page of origin may call the API
// from another origin: its host (or scheme://host when the pattern has a
// scheme) matches one of patterns, as the websocket origin check matches
// them. A page of the API's own origin needs no CORS and is not asked about.
func originAllowed(origin string, patterns []string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, err := path.Match(strings.ToLower(strings.TrimSpace(p)), strings.ToLower(target)); err == nil && ok {
			return true
		}
	}
	return false
}

// cors answers preflights and adds CORS headers to the answers of requests
// from the browser origins patterns allow; requests of other origins get no
// CORS header, so the browser keeps their answers from the page. Bearer
// tokens travel in the Authorization header, never in cookies, so
// credentials are not allowed.
func cors(patterns []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		allowed := origin != "" && originAllowed(origin, patterns)
		if origin != "" {
			w.Header().Add("Vary", "Origin")
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			w.Header().Add("Vary", "Access-Control-Request-Method, Access-Control-Request-Headers")
			if !allowed {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", corsMethods)
			h.Set("Access-Control-Allow-Headers", corsHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if allowed {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Set("Access-Control-Expose-Headers", "X-Request-Id")
		}
		next.ServeHTTP(w, r)
	})
}
