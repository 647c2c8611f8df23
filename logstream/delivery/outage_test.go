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
	"github.com/auditlog/auditlog/logstream/streamstore"
)

// TestOrderAcrossOutages: a receiver of each kind that rejects deliveries
// (5xx, or a syslog connection cut at once), then times out, then refuses
// connections, then recovers, gets every event of its organization and no
// other, in order, each duplicate with the id it had; the stream shows
// ERROR with the cause while it fails and ACTIVE again after, and keeps
// its position throughout. Syslog's receiver is a real rsyslogd
// (TestSyslogOrderAcrossOutages, make test-syslog).
func TestOrderAcrossOutages(t *testing.T) {
	for _, kind := range []testenv.SinkKind{testenv.SinkWebhook, testenv.SinkSplunk} {
		t.Run(string(kind), func(t *testing.T) { orderAcrossOutages(t, kind) })
	}
}

func orderAcrossOutages(t *testing.T, kind testenv.SinkKind) {
	e := newEnv(t)
	sink := testenv.StartSink(t, kind, testenv.SinkOptions{})
	org := "org-" + testenv.RandomHex(4)
	other := "org-" + testenv.RandomHex(4)
	name := "siem"
	start := time.Now().Add(-time.Hour)
	s, err := e.svc.Create(context.Background(), &domain.Principal{OrgID: org, Subject: "admin"}, delivery.Input{
		Name: &name, StartAt: &start, Destination: sinkDestination(t, sink),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.engine(t, delivery.Config{MaxEvents: 50, Options: logstream.Options{RootCAs: sink.RootCAs}})
	delivered := func() []string { return sink.IDs("USER_CREATED") }

	want := e.publish(t, org, 120, "USER_CREATED")
	e.publish(t, other, 20, "USER_CREATED") // never delivered to org's stream
	waitFor(t, "the first events", 20*time.Second, func() bool { return len(delivered()) >= 50 })

	// What the stream's last error says of each outage, by destination.
	says := map[testenv.SinkOutage]map[testenv.SinkKind]string{
		testenv.SinkRejecting: {testenv.SinkWebhook: "HTTP 503", testenv.SinkSplunk: "Server is busy", testenv.SinkSyslog: "closed the connection"},
		testenv.SinkSilent:    {testenv.SinkWebhook: "did not answer in time", testenv.SinkSplunk: "did not answer in time", testenv.SinkSyslog: "did not answer in time"},
		testenv.SinkRefusing:  {testenv.SinkWebhook: "refused the connection", testenv.SinkSplunk: "refused the connection", testenv.SinkSyslog: "refused the connection"},
	}
	for _, outage := range []testenv.SinkOutage{testenv.SinkRejecting, testenv.SinkSilent, testenv.SinkRefusing} {
		sink.Fail(outage)
		want = append(want, e.publish(t, org, 30, "USER_CREATED")...)
		var last string
		waitFor(t, says[outage][kind]+" reported as ERROR", 20*time.Second, func() bool {
			st := e.state(t, org, s.ID)
			last = st.LastError
			return st.Status == streamstore.Error && strings.Contains(st.LastError, says[outage][kind]) && st.FailingSince != nil
		})
		t.Logf("outage %d: %s", outage, last)
		sink.Recover()
	}
	want = append(want, e.publish(t, org, 40, "USER_CREATED")...)
	waitFor(t, "every event", 30*time.Second, func() bool {
		return len(sink.Distinct("USER_CREATED")) >= len(want) && e.state(t, org, s.ID).Delivered >= int64(len(want))
	})
	checkOrder(t, delivered(), want)
	st := e.state(t, org, s.ID)
	if st.Status != streamstore.Active || st.LastError != "" || st.FailingSince != nil || st.Failed == 0 {
		t.Fatalf("after recovery: status %s, error %q, failing since %v, failed %d", st.Status, st.LastError, st.FailingSince, st.Failed)
	}
	if st.LastEventID != want[len(want)-1] {
		t.Fatalf("last delivered %s, want %s", st.LastEventID, want[len(want)-1])
	}
	t.Logf("%s: %d events, %d deliveries", kind, len(want), len(delivered()))
}

// sinkDestination is the destination of a stream to sink, in JSON.
func sinkDestination(t *testing.T, sink *testenv.Sink) *delivery.Destination {
	switch sink.Kind {
	case testenv.SinkWebhook:
		return &delivery.Destination{Webhook: &logstream.WebhookConfig{URL: sink.URL + "/hook", Secrets: []logstream.Secret{secret()}, Format: logstream.FormatJSON}}
	case testenv.SinkSplunk:
		return &delivery.Destination{Splunk: &logstream.SplunkConfig{URL: sink.URL, Token: testenv.SinkSplunkToken, Ack: true, Format: logstream.FormatJSON}}
	case testenv.SinkSyslog:
		return &delivery.Destination{Syslog: &logstream.SyslogConfig{Host: "127.0.0.1", Port: sink.Port, ServerName: "localhost", Format: logstream.FormatJSON}}
	}
	t.Fatalf("no destination for %s", sink.Kind)
	return nil
}
