package delivery_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/logstream"
	"github.com/auditlog/auditlog/logstream/delivery"
	"github.com/auditlog/auditlog/logstream/splunk/hectest"
	"github.com/auditlog/auditlog/logstream/streamstore"
)

const hecToken = "6f2b4a1e-0c4d-4a8e-9d57-3b1f0b7c2e11"

// newHEC starts a Splunk HTTP Event Collector with indexer
// acknowledgement, each batch indexed by the first poll of its ackId.
func newHEC(t *testing.T) *hectest.Receiver {
	h := hectest.New(hecToken)
	h.Set(func(h *hectest.Receiver) { h.AckEnabled = true })
	t.Cleanup(h.Close)
	return h
}

// indexed is the ids of the USER_CREATED events h accepted, in order.
func indexed(h *hectest.Receiver) []string {
	var ids []string
	for _, env := range h.Received() {
		if ev, _ := env["event"].(map[string]any); ev["type"] == "USER_CREATED" {
			ids = append(ids, ev["id"].(string))
		}
	}
	return ids
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
	waitFor(t, "the first events indexed", 10*time.Second, func() bool { return len(indexed(h)) >= 40 })
	h.Set(func(h *hectest.Receiver) { h.Busy = true })
	want = append(want, e.publish(t, org, 50, "USER_CREATED")...)
	waitFor(t, "ERROR while Splunk is busy", 10*time.Second, func() bool {
		st := e.state(t, org, s.ID)
		return st.Status == streamstore.Error && strings.Contains(st.LastError, "Server is busy")
	})
	h.Set(func(h *hectest.Receiver) { h.Busy = false })
	waitFor(t, "every event indexed", 20*time.Second, func() bool { return len(indexed(h)) >= len(want) })
	checkOrder(t, indexed(h), want)
	waitFor(t, "ACTIVE again", 5*time.Second, func() bool { return e.state(t, org, s.ID).Status == streamstore.Active })
}
