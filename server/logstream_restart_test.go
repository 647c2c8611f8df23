package server_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/server"
)

// TestLogStreamAcrossNATSRestart: the NATS server is stopped and started
// again (a restart, not a kill) while a stream is delivering and events
// keep being recorded. The receiver gets every recorded event, in the
// order of the org's log, nothing else; an event it gets twice comes again
// under its own id, and a webhook-id that comes twice carries the same
// events. Each destination but syslog, whose receiver is a real rsyslogd
// (make test-syslog).
func TestLogStreamAcrossNATSRestart(t *testing.T) {
	for _, kind := range []testenv.SinkKind{testenv.SinkWebhook, testenv.SinkSplunk} {
		t.Run(string(kind), func(t *testing.T) { logStreamAcrossNATSRestart(t, kind) })
	}
}

func logStreamAcrossNATSRestart(t *testing.T, kind testenv.SinkKind) {
	sink := testenv.StartSink(t, kind, testenv.SinkOptions{})
	x := testenv.StartExternalNATS(t)
	env := testenv.Start(t, x.Use, func(c *server.Config) {
		c.EgressAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		c.LogStreamTick = 100 * time.Millisecond
		c.LogStreamRootCAs = sink.RootCAs
		c.EncryptionKey = []byte("0123456789abcdef0123456789abcdef") // an external NATS needs one
	})
	env.EnableOrg(t, "acme", domain.RegionUS)
	admin := testenv.AdminToken(t, "acme")
	in := map[string]any{"name": "siem", "destination": sink.Destination, "filter": map[string]any{"types": []string{"USER_CREATED"}}}
	var created struct{ CreateLogStream struct{ ID string } }
	env.Do(t, admin, createLogStream, map[string]any{"input": in}).MustData(t, &created)

	// One writer, so the log's order is the order the batches were
	// acknowledged in; each batch is sent again (same ids) until recorded.
	const batches, size = 40, 50
	token := testenv.ServiceToken(t)
	at := time.Now().Add(-time.Hour)
	var (
		mu       sync.Mutex
		recorded []string
		retries  int
	)
	failedOnce := make(chan struct{})
	writerDone := make(chan error, 1)
	// The writer stops halfway until NATS is down, so that it always
	// writes into the outage however fast the first half went.
	halfway, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		for b := range batches {
			if b == batches/2 {
				close(halfway)
				<-stopped
			}
			events := make([]map[string]any, size)
			for i := range events {
				events[i] = userCreated("acme", at, fmt.Sprintf("b%d-e%d@example.com", b, i))
			}
			for attempt := 0; ; attempt++ {
				res, err := tryRecord(env, token, events)
				if err == nil {
					mu.Lock()
					for _, r := range res {
						if r.Status == "RECORDED" || r.Status == "DUPLICATE" {
							recorded = append(recorded, r.ID)
						}
					}
					mu.Unlock()
					break
				}
				if _, fatal := err.(errNotRetryable); fatal || attempt == 600 {
					writerDone <- fmt.Errorf("batch %d: %w", b, err)
					return
				}
				mu.Lock()
				if retries++; retries == 1 {
					close(failedOnce)
				}
				mu.Unlock()
				time.Sleep(50 * time.Millisecond) // a client's pause before sending the same ids again
			}
		}
		writerDone <- nil
	}()

	// Stop NATS once the stream has delivered some of the events, and
	// start it again once the writer has felt it.
	waitFor(t, 30*time.Second, "the first deliveries", func() bool { return len(sink.IDs("USER_CREATED")) >= batches*size/4 })
	select {
	case <-halfway:
	case err := <-writerDone:
		t.Fatalf("the writer stopped before halfway: %v", err)
	case <-time.After(3 * time.Minute):
		t.Fatal("the writer did not reach halfway within 3 minutes")
	}
	x.Stop()
	close(stopped)
	select {
	case <-failedOnce:
	case <-time.After(30 * time.Second):
		t.Fatal("the writer never saw NATS gone")
	}
	x.Restart()
	select {
	case err := <-writerDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("the writer did not finish within 3 minutes of the restart")
	}
	mu.Lock()
	want := slices.Clone(recorded)
	t.Logf("%d events recorded, %d batch retries across the restart", len(want), retries)
	mu.Unlock()
	if len(want) != batches*size {
		t.Fatalf("%d events recorded of %d", len(want), batches*size)
	}
	seen := func() []string { return sink.Distinct("USER_CREATED") }
	waitFor(t, 90*time.Second, "every recorded event delivered", func() bool { return len(seen()) >= len(want) })

	// The log's order: the org's tree, which follows the stream.
	env.WaitProjected(t)
	rows, err := env.EventStore(domain.RegionUS).Pool().Query(context.Background(),
		`SELECT id FROM audit_us.events WHERE org_id = 'acme' AND type = 'USER_CREATED' ORDER BY leaf_index`)
	if err != nil {
		t.Fatal(err)
	}
	var logOrder []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		logOrder = append(logOrder, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(logOrder, want) {
		t.Fatalf("the log holds %d events, not the %d recorded in their order", len(logOrder), len(want))
	}
	got := seen()
	if !slices.Equal(got, want) {
		t.Fatalf("the webhook got %d distinct events, not the %d recorded, in order", len(got), len(want))
	}
	all := sink.IDs("USER_CREATED")
	if m := sink.Mismatched(); len(m) > 0 {
		t.Fatalf("webhook-ids sent again with other events: %v", m)
	}
	t.Logf("%s: %d deliveries of %d events (%d duplicates)", kind, len(all), len(got), len(all)-len(got))
}
