// Package hectest is a Splunk HTTP Event Collector on loopback, for the
// splunk and delivery tests and for the benchmark (cmd/auditbench): the
// event and ack endpoints, "Splunk <token>" authentication, concatenated
// envelopes, channels and indexer acknowledgement, and HEC's error codes
// and statuses, as Splunk documents them
// (https://docs.splunk.com/Documentation/Splunk/latest/Data/TroubleshootHTTPEventCollector).
package hectest

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
	"time"
)

// Receiver is one collector. Change its behaviour with Set; read what it
// accepted with Received, or have each accepted batch handed to OnBatch.
type Receiver struct {
	// Server is the collector's HTTP server; its URL is the HEC base URL.
	*httptest.Server

	mu sync.Mutex
	// Behaviour, changed through Set.
	Token      string
	Indexes    map[string]bool // indexes the token may write; empty: any
	AckEnabled bool
	Busy       bool // answer 503 code 9
	BusyAfter  int  // if not 0, busy from request BusyAfter+1 on
	AckAfter   int  // polls before an ack reads true; -1: never
	// OnBatch, if set, is given each accepted batch's envelopes with the
	// time it arrived, under the receiver's lock, in the order batches
	// were accepted, and the receiver keeps nothing itself.
	OnBatch func(at time.Time, envelopes []map[string]any)

	events   []map[string]any
	requests int
	channels map[string]bool
	polls    map[int64]int
	nextAck  int64
}

// New starts a plain-HTTP collector on loopback that accepts token; Close
// stops it.
func New(token string) *Receiver { return start(token, httptest.NewServer) }

// NewTLS starts a collector on loopback over TLS; its certificate is
// Server.Certificate().
func NewTLS(token string) *Receiver { return start(token, httptest.NewTLSServer) }

func start(token string, serve func(http.Handler) *httptest.Server) *Receiver {
	h := &Receiver{Token: token, channels: map[string]bool{}, polls: map[int64]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /services/collector/event", h.event)
	mux.HandleFunc("POST /services/collector/ack", h.ack)
	h.Server = serve(mux)
	return h
}

var guid = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func reply(w http.ResponseWriter, status, code int, text string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"text":%q,"code":%d}`, text, code)
}

// auth checks the Authorization header as HEC does.
func (h *Receiver) auth(w http.ResponseWriter, r *http.Request) bool {
	a := r.Header.Get("Authorization")
	switch {
	case a == "":
		reply(w, 401, 2, "Token is required")
	case !strings.HasPrefix(a, "Splunk "):
		reply(w, 401, 3, "Invalid authorization")
	case strings.TrimPrefix(a, "Splunk ") != h.Token:
		reply(w, 403, 4, "Invalid token")
	default:
		return true
	}
	return false
}

// channel checks X-Splunk-Request-Channel when acknowledgement is on.
func (h *Receiver) channel(w http.ResponseWriter, r *http.Request) (string, bool) {
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

func (h *Receiver) event(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	at := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests++
	if !h.auth(w, r) {
		return
	}
	if h.Busy || h.BusyAfter > 0 && h.requests > h.BusyAfter {
		reply(w, 503, 9, "Server is busy")
		return
	}
	var ch string
	if h.AckEnabled {
		var ok bool
		if ch, ok = h.channel(w, r); !ok {
			return
		}
	}
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
		if idx, _ := env["index"].(string); idx != "" && len(h.Indexes) > 0 && !h.Indexes[idx] {
			reply(w, 400, 7, "Incorrect index")
			return
		}
		batch = append(batch, env)
	}
	if h.OnBatch != nil {
		h.OnBatch(at, batch)
	} else {
		h.events = append(h.events, batch...)
	}
	if !h.AckEnabled {
		reply(w, 200, 0, "Success")
		return
	}
	h.channels[ch] = true
	id := h.nextAck
	h.nextAck++
	h.polls[id] = 0
	fmt.Fprintf(w, `{"text":"Success","code":0,"ackId":%d}`, id)
}

func (h *Receiver) ack(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.auth(w, r) {
		return
	}
	if !h.AckEnabled {
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
		out[strconv.FormatInt(id, 10)] = known && h.AckAfter >= 0 && n >= h.AckAfter
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"acks": out})
}

// Set changes the receiver's behaviour under its lock.
func (h *Receiver) Set(f func(h *Receiver)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
}

// Received is every envelope accepted so far, in order, unless OnBatch
// took them.
func (h *Receiver) Received() []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), h.events...)
}

// Channels is how many distinct channels sent acknowledged batches.
func (h *Receiver) Channels() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.channels)
}

// Polls is how many times each ackId was polled.
func (h *Receiver) Polls() map[int64]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[int64]int, len(h.polls))
	for id, n := range h.polls {
		out[id] = n
	}
	return out
}
