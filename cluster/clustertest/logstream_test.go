package clustertest

import (
	"crypto/rand"
	"encoding/base64"
	"slices"
	"testing"
	"time"

	"github.com/auditlog/auditlog/internal/clusterenv"
	"github.com/auditlog/auditlog/internal/testenv"
)

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
// membership (Postgres ends its session at once) and delivers from the
// stored position, so the receiver gets every event, in order, the ones of
// the lost batch again with the same ids. Each destination but syslog,
// whose receiver is a real rsyslogd (make test-syslog).
func TestInstanceLossMidLogStreamBatch(t *testing.T) {
	skipShort(t)
	for _, kind := range []testenv.SinkKind{testenv.SinkWebhook, testenv.SinkSplunk} {
		t.Run(string(kind), func(t *testing.T) { instanceLossMidLogStreamBatch(t, kind) })
	}
}

func instanceLossMidLogStreamBatch(t *testing.T, kind testenv.SinkKind) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	// The receiver takes the second batch in and never answers.
	sink := testenv.StartSink(t, kind, testenv.SinkOptions{Hold: 2})
	opts := clusterenv.AuditdOptions{Replicas: 3, Env: []string{
		"AUDITD_ENCRYPTION_KEY=" + base64.StdEncoding.EncodeToString(key), "AUDITD_EGRESS_ALLOW=127.0.0.0/8"}}
	if sink.CAFile != "" {
		opts.Env = append(opts.Env, "SSL_CERT_FILE="+sink.CAFile) // Go's system roots, as an operator trusts a private CA
	}
	c := clusterenv.StartNATSCluster(t)
	a1 := clusterenv.StartAuditd(t, c, opts)
	org := "acme"
	enable(t, a1, []string{org})
	admin := testenv.AdminToken(t, org)
	var created struct{ CreateLogStream struct{ ID string } }
	a1.Do(t, admin, `mutation($in: CreateLogStreamInput!) { createLogStream(input: $in) { id } }`,
		map[string]any{"in": map[string]any{"name": "siem", "destination": sink.Destination}}).MustData(t, &created)

	held := func() bool {
		select {
		case <-sink.Held():
			return true
		default:
			return false
		}
	}
	// Events after the first delivery, so that there is a second batch
	// however many the first took.
	want := recordUsers(t, a1, org, 50, 100)
	waitUntil(t, 60*time.Second, "the first batch", func() bool { return len(sink.IDs(userCreated)) > 0 || held() })
	want = append(want, recordUsers(t, a1, org, 50, 200)...)
	waitUntil(t, 60*time.Second, "the second batch, in flight", held)
	before := len(sink.Distinct(userCreated))
	a2 := clusterenv.StartAuditd(t, c, opts)
	a1.Kill()
	want = append(want, recordUsers(t, a2, org, 50, 100)...)
	// Resent events count once: wait for as many distinct ids as recorded.
	took := waitUntil(t, 90*time.Second, "every event delivered by the survivor", func() bool { return len(sink.Distinct(userCreated)) >= len(want) })
	if first := sink.Distinct(userCreated); !slices.Equal(first, want) {
		t.Fatalf("the receiver got %d distinct events of %d, not all or not in order", len(first), len(want))
	}
	if m := sink.Mismatched(); len(m) > 0 {
		t.Fatalf("webhook-ids sent again with other events: %v", m)
	}
	got := sink.IDs(userCreated)
	t.Logf("%s: SIGKILL mid-batch after %d events delivered; the other instance delivered the rest (%d events, %d resent) %s later",
		kind, before, len(want)-before, len(got)-len(want), took.Round(time.Millisecond))
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

// userCreated is the type of the events recordUsers records.
const userCreated = "USER_CREATED"
