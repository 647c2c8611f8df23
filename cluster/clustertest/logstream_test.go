package clustertest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/auditlog/auditlog/internal/clusterenv"
	"github.com/auditlog/auditlog/internal/testenv"
)

// hookReceiver is a webhook endpoint whose second request hangs until
// released: the batch in flight when its sender is killed.
type hookReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	ids      []string
	requests int
	hanging  chan struct{}
	release  chan struct{}
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{hanging: make(chan struct{}), release: make(chan struct{})}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.requests++
		n := h.requests
		h.mu.Unlock()
		if n == 2 {
			close(h.hanging)
			select {
			case <-h.release:
			case <-r.Context().Done():
			}
			return
		}
		var p struct {
			Data struct{ Events []struct{ ID, Type string } }
		}
		if json.Unmarshal(body, &p) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		for _, e := range p.Data.Events {
			if e.Type == "USER_CREATED" {
				h.ids = append(h.ids, e.ID)
			}
		}
		h.mu.Unlock()
	}))
	t.Cleanup(func() { close(h.release); h.Close() })
	return h
}

func (h *hookReceiver) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ids)
}

// recordUsers records n USER_CREATED events of org through a and returns
// their ids in the order recorded.
func recordUsers(t *testing.T, a *clusterenv.Auditd, org string, batch, n int) []string {
	t.Helper()
	in := &ingester{orgs: []string{org}}
	var ids []string
	for b := range n / batch {
		events := in.batch(batch*1000+b, batch)
		var out struct {
			RecordAuditEvents struct{ Results []struct{ ID, Status string } }
		}
		a.Do(t, testenv.ServiceToken(t), recordMutation, map[string]any{"events": events}).MustData(t, &out)
		for _, r := range out.RecordAuditEvents.Results {
			if r.Status != "RECORDED" {
				t.Fatalf("event %s: %s", r.ID, r.Status)
			}
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// SIGKILL the instance delivering a log stream while a batch is in flight:
// the other instance takes the stream over once the dead one leaves the
// membership (Postgres ends its session at once) and
// delivers from the stored position, so the receiver gets every event, in
// order, the ones of the lost batch again with the same ids.
func TestInstanceLossMidLogStreamBatch(t *testing.T) {
	skipShort(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c := clusterenv.StartNATSCluster(t)
	opts := clusterenv.AuditdOptions{Replicas: 3, Env: []string{
		"AUDITD_ENCRYPTION_KEY=" + base64.StdEncoding.EncodeToString(key), "AUDITD_EGRESS_ALLOW=127.0.0.0/8"}}
	a1 := clusterenv.StartAuditd(t, c, opts)
	org := "acme"
	enable(t, a1, []string{org})
	h := newHookReceiver(t)
	admin := testenv.AdminToken(t, org)
	var created struct{ CreateLogStream struct{ ID string } }
	a1.Do(t, admin, `mutation($url: String!) { createLogStream(input: {name: "siem", destination: {webhook: {url: $url,
		secrets: ["whsec_QUJDQUJDQUJDQUJDQUJDQUJDQUJDQUJDQUJDQUJDQUJD"]}}}) { id } }`, map[string]any{"url": h.URL + "/hook"}).MustData(t, &created)

	want := recordUsers(t, a1, org, 50, 300)
	waitUntil(t, 60*time.Second, "the second request, in flight", func() bool {
		select {
		case <-h.hanging:
			return true
		default:
			return false
		}
	})
	before := len(h.received())
	a2 := clusterenv.StartAuditd(t, c, opts)
	a1.Kill()
	want = append(want, recordUsers(t, a2, org, 50, 100)...)
	// Resent events count once: wait for as many distinct ids as recorded.
	distinct := func(ids []string) []string {
		var first []string
		seen := map[string]bool{}
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				first = append(first, id)
			}
		}
		return first
	}
	took := waitUntil(t, 90*time.Second, "every event delivered by the survivor", func() bool { return len(distinct(h.received())) >= len(want) })
	got := h.received()
	first := distinct(got)
	if !slices.Equal(first, want) {
		t.Fatalf("the receiver got %d distinct events of %d, not all or not in order", len(first), len(want))
	}
	t.Logf("SIGKILL mid-batch after %d events delivered; the other instance delivered the rest (%d events, %d resent) %s later",
		before, len(want)-before, len(got)-len(want), took.Round(time.Millisecond))
	var list struct {
		LogStreams []struct {
			Status    string
			Delivered int
		}
	}
	a2.Do(t, admin, `{ logStreams { status delivered } }`, nil).MustData(t, &list)
	if len(list.LogStreams) != 1 || list.LogStreams[0].Status != "ACTIVE" {
		t.Fatalf("after takeover: %+v", list.LogStreams)
	}
}
