package delivery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/logstream"
	"github.com/auditlog/auditlog/logstream/delivery"
	"github.com/auditlog/auditlog/logstream/streamstore"
)

const hecToken = "6f2b4a1e-0c4d-4a8e-9d57-3b1f0b7c2e11"

// hec is a Splunk HTTP Event Collector with indexer acknowledgement: a
// batch counts as indexed once its ackId has been polled.
type hec struct {
	*httptest.Server
	mu      sync.Mutex
	status  int // answer to event posts; 0 is 200
	next    int64
	pending map[int64][]string
	indexed []string
}

func newHEC(t *testing.T) *hec {
	h := &hec{pending: map[int64][]string{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Splunk "+hecToken {
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"text":"Invalid authorization","code":4}`)
			return
		}
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		switch r.URL.Path {
		case "/services/collector/event":
			if h.status != 0 {
				w.WriteHeader(h.status)
				_, _ = io.WriteString(w, `{"text":"Server is busy","code":9}`)
				return
			}
			var ids []string
			dec := json.NewDecoder(bytes.NewReader(body))
			for {
				var env struct {
					Event struct{ ID, Type string } `json:"event"`
				}
				if err := dec.Decode(&env); err != nil {
					break
				}
				if env.Event.Type == "USER_CREATED" {
					ids = append(ids, env.Event.ID)
				}
			}
			h.next++
			h.pending[h.next] = ids
			fmt.Fprintf(w, `{"text":"Success","code":0,"ackId":%d}`, h.next)
		case "/services/collector/ack":
			var req struct{ Acks []int64 }
			_ = json.Unmarshal(body, &req)
			acks := map[string]bool{}
			for _, id := range req.Acks {
				if ids, ok := h.pending[id]; ok {
					h.indexed = append(h.indexed, ids...)
					delete(h.pending, id)
				}
				acks[fmt.Sprint(id)] = true
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"acks": acks})
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hec) set(status int) { h.mu.Lock(); h.status = status; h.mu.Unlock() }

func (h *hec) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.indexed...)
}

// TestSplunkOrderAcrossFailures: a Splunk HEC with acknowledgement that
// is busy (503) for a while indexes every event, in order, and the stream
// shows ERROR while it is busy and ACTIVE after.
func TestSplunkOrderAcrossFailures(t *testing.T) {
	e := newEnv(t)
	h := newHEC(t)
	org := "org-" + testenv.RandomHex(4)
	name := "splunk"
	start := time.Now().Add(-time.Hour)
	s, err := e.svc.Create(context.Background(), &domain.Principal{OrgID: org}, delivery.Input{
		Name: &name, StartAt: &start,
		Destination: &delivery.Destination{Splunk: &logstream.SplunkConfig{URL: h.URL, Token: hecToken, Ack: true, Format: logstream.FormatJSON}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.engine(t, delivery.Config{MaxEvents: 40})
	want := e.publish(t, org, 100, "USER_CREATED")
	waitFor(t, "the first events indexed", 10*time.Second, func() bool { return len(h.received()) >= 40 })
	h.set(http.StatusServiceUnavailable)
	want = append(want, e.publish(t, org, 50, "USER_CREATED")...)
	waitFor(t, "ERROR while Splunk is busy", 10*time.Second, func() bool {
		st := e.state(t, org, s.ID)
		return st.Status == streamstore.Error && strings.Contains(st.LastError, "Server is busy")
	})
	h.set(0)
	waitFor(t, "every event indexed", 20*time.Second, func() bool { return len(h.received()) >= len(want) })
	checkOrder(t, h.received(), want)
	waitFor(t, "ACTIVE again", 5*time.Second, func() bool { return e.state(t, org, s.ID).Status == streamstore.Active })
}
