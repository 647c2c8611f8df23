package splunk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// hec is an HTTP Event Collector as Splunk documents it: the event and ack
// endpoints, "Splunk <token>" authentication, concatenated envelopes,
// channels and indexer acknowledgement, and HEC's error codes and statuses
// (https://docs.splunk.com/Documentation/Splunk/latest/Data/TroubleshootHTTPEventCollector).
type hec struct {
	srv *httptest.Server

	mu sync.Mutex
	// Set by the test before sending.
	token      string
	indexes    map[string]bool // indexes the token may write; empty: any
	ackEnabled bool
	busy       bool // answer 503 code 9
	busyAfter  int  // if not 0, busy from request busyAfter+1 on
	ackAfter   int  // polls before an ack reads true; -1: never
	// Seen.
	events   []map[string]any
	requests int
	channels map[string]bool
	polls    map[int64]int
	nextAck  int64
}

func newHEC(t *testing.T, token string) *hec {
	t.Helper()
	h := &hec{token: token, channels: map[string]bool{}, polls: map[int64]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /services/collector/event", h.event)
	mux.HandleFunc("POST /services/collector/ack", h.ack)
	h.srv = httptest.NewTLSServer(mux)
	t.Cleanup(h.srv.Close)
	return h
}

var guid = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func reply(w http.ResponseWriter, status, code int, text string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"text":%q,"code":%d}`, text, code)
}

// auth checks the Authorization header as HEC does.
func (h *hec) auth(w http.ResponseWriter, r *http.Request) bool {
	a := r.Header.Get("Authorization")
	switch {
	case a == "":
		reply(w, 401, 2, "Token is required")
	case !strings.HasPrefix(a, "Splunk "):
		reply(w, 401, 3, "Invalid authorization")
	case strings.TrimPrefix(a, "Splunk ") != h.token:
		reply(w, 403, 4, "Invalid token")
	default:
		return true
	}
	return false
}

// channel checks X-Splunk-Request-Channel when acknowledgement is on.
func (h *hec) channel(w http.ResponseWriter, r *http.Request) (string, bool) {
	c := r.Header.Get("X-Splunk-Request-Channel")
	if c == "" {
		c = r.URL.Query().Get("channel")
	}
	switch {
	case c == "":
		reply(w, 400, 10, "Data channel is missing")
	case !guid.MatchString(c):
		reply(w, 400, 11, "Invalid data channel")
	default:
		return c, true
	}
	return "", false
}

func (h *hec) event(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests++
	if !h.auth(w, r) {
		return
	}
	if h.busy || h.busyAfter > 0 && h.requests > h.busyAfter {
		reply(w, 503, 9, "Server is busy")
		return
	}
	var ch string
	if h.ackEnabled {
		var ok bool
		if ch, ok = h.channel(w, r); !ok {
			return
		}
	}
	body, _ := io.ReadAll(r.Body)
	if len(bytes.TrimSpace(body)) == 0 {
		reply(w, 400, 5, "No data")
		return
	}
	// Concatenated JSON objects, with or without white space between.
	var batch []map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	for dec.More() {
		var env map[string]any
		if err := dec.Decode(&env); err != nil {
			reply(w, 400, 6, "Invalid data format")
			return
		}
		ev, ok := env["event"]
		if !ok {
			reply(w, 400, 12, "Event field is required")
			return
		}
		if ev == nil || ev == "" {
			reply(w, 400, 13, "Event field cannot be blank")
			return
		}
		if _, ok := env["time"].(float64); env["time"] != nil && !ok {
			reply(w, 400, 6, "Invalid data format")
			return
		}
		if idx, _ := env["index"].(string); idx != "" && len(h.indexes) > 0 && !h.indexes[idx] {
			reply(w, 400, 7, "Incorrect index")
			return
		}
		batch = append(batch, env)
	}
	h.events = append(h.events, batch...)
	if !h.ackEnabled {
		reply(w, 200, 0, "Success")
		return
	}
	h.channels[ch] = true
	id := h.nextAck
	h.nextAck++
	h.polls[id] = 0
	fmt.Fprintf(w, `{"text":"Success","code":0,"ackId":%d}`, id)
}

func (h *hec) ack(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.auth(w, r) {
		return
	}
	if !h.ackEnabled {
		reply(w, 400, 14, "ACK is disabled")
		return
	}
	ch, ok := h.channel(w, r)
	if !ok {
		return
	}
	if !h.channels[ch] {
		reply(w, 400, 11, "Invalid data channel")
		return
	}
	var req struct {
		Acks []int64 `json:"acks"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Acks == nil {
		reply(w, 400, 6, "Invalid data format")
		return
	}
	out := map[string]bool{}
	for _, id := range req.Acks {
		n, known := h.polls[id]
		h.polls[id] = n + 1
		out[strconv.FormatInt(id, 10)] = known && h.ackAfter >= 0 && n >= h.ackAfter
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"acks": out})
}

// set changes the receiver's behaviour under its lock.
func (h *hec) set(f func(h *hec)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
}

func (h *hec) received() []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), h.events...)
}
