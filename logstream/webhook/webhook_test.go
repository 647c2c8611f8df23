package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/egress"
	"github.com/auditlog/auditlog/logstream"
	"github.com/auditlog/auditlog/ocsf"
)

func newSecret(t *testing.T) logstream.Secret {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return logstream.Secret("whsec_" + base64.StdEncoding.EncodeToString(k))
}

var loopback = egress.NewPolicy([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")})

// received is one request the receiver got.
type received struct {
	header http.Header
	body   []byte
}

// receiver is an HTTPS endpoint that records requests and answers with
// the next of answers (the last one repeats).
type receiver struct {
	srv     *httptest.Server
	pool    *x509.CertPool
	mu      sync.Mutex
	got     []received
	answers []func(w http.ResponseWriter)
}

func newReceiver(t *testing.T, answers ...func(w http.ResponseWriter)) *receiver {
	t.Helper()
	r := &receiver{answers: answers}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{req.Header.Clone(), body})
		i := min(len(r.got), len(r.answers)) - 1
		r.mu.Unlock()
		if i < 0 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		r.answers[i](w)
	}))
	t.Cleanup(r.srv.Close)
	r.pool = x509.NewCertPool()
	r.pool.AddCert(r.srv.Certificate())
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func status(code int, header ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"status":%d}`, code)
	}
}

func events(n int) []*domain.Event {
	out := make([]*domain.Event, n)
	for i := range out {
		leaf := int64(100 + i)
		out[i] = &domain.Event{
			ID: fmt.Sprintf("01JEVENT%04d", i), OrgID: "org-1", Source: domain.SourcePlatform, Type: "USER_CREATED",
			OccurredAt: time.Now().UTC(), RecordedAt: time.Now().UTC(),
			Actor:   domain.Actor{Kind: domain.ActorUser, ID: "u-1"},
			Details: json.RawMessage(`{"userId":"u-2","userEmail":"b@example.com"}`), LeafIndex: &leaf,
		}
	}
	return out
}

func newSender(t *testing.T, r *receiver, secrets []logstream.Secret, format logstream.Format, opts logstream.Options) *Sender {
	t.Helper()
	if opts.Policy == nil {
		opts.Policy = loopback
	}
	if opts.RootCAs == nil {
		opts.RootCAs = r.pool
	}
	opts.OrgID, opts.StreamID = "org-1", "stream-1"
	opts.Product = ocsf.Product{Name: "Audit Log", VendorName: "Example"}
	s, err := New(logstream.WebhookConfig{URL: r.srv.URL + "/hook?token=url-secret", Secrets: secrets, Format: format}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Batches arrive cut to the limits, in order, each verified by the Standard
// Webhooks reference library with every secret of a rotation.
func TestSendVerifiesWithStandardWebhooks(t *testing.T) {
	for _, format := range []logstream.Format{logstream.FormatJSON, logstream.FormatOCSF} {
		r := newReceiver(t)
		current, previous := newSecret(t), newSecret(t)
		s := newSender(t, r, []logstream.Secret{current, previous}, format, logstream.Options{Limits: logstream.Limits{MaxEvents: 3}})
		batch := events(7)
		res, err := s.Send(context.Background(), batch)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if res.Delivered != 7 || res.Requests != 3 {
			t.Fatalf("%s: %+v, want 7 events in 3 requests", format, res)
		}
		got := r.requests()
		var ids []string
		n := 0
		for i, req := range got {
			for _, sec := range []logstream.Secret{current, previous} {
				wh, err := standardwebhooks.NewWebhook(sec.Reveal())
				if err != nil {
					t.Fatal(err)
				}
				if err := wh.Verify(req.body, req.header); err != nil {
					t.Errorf("%s request %d: the reference verifier refuses it: %v", format, i, err)
				}
			}
			// A secret the sender does not hold does not verify.
			wh, _ := standardwebhooks.NewWebhook(newSecret(t).Reveal())
			if err := wh.Verify(req.body, req.header); err == nil {
				t.Errorf("%s request %d: verified with a stranger's secret", format, i)
			}
			// Tampering breaks it.
			wh, _ = standardwebhooks.NewWebhook(current.Reveal())
			if err := wh.Verify(bytes.Replace(req.body, []byte("u-1"), []byte("u-9"), 1), req.header); err == nil {
				t.Errorf("%s request %d: a changed body still verifies", format, i)
			}
			if sigs := strings.Fields(req.header.Get("webhook-signature")); len(sigs) != 2 {
				t.Errorf("%s: %d signatures, want one per secret", format, len(sigs))
			}
			var p struct {
				Type string `json:"type"`
				Data struct {
					OrgID, StreamID string
					Format          logstream.Format
					Events          []map[string]any
				} `json:"data"`
			}
			if err := json.Unmarshal(req.body, &p); err != nil {
				t.Fatal(err)
			}
			if p.Type != TypeEvents || p.Data.OrgID != "org-1" || p.Data.StreamID != "stream-1" || p.Data.Format != format {
				t.Errorf("%s: envelope %+v", format, p)
			}
			for _, ev := range p.Data.Events {
				wantID, wantLeaf := batch[n].ID, float64(*batch[n].LeafIndex)
				var id, leaf any = ev["id"], ev["leafIndex"]
				if format == logstream.FormatOCSF {
					md := ev["metadata"].(map[string]any)
					id, leaf = md["uid"], md["sequence"]
				}
				if id != wantID || leaf != wantLeaf {
					t.Errorf("%s: event %d has id %v leaf %v, want %v %v", format, n, id, leaf, wantID, wantLeaf)
				}
				n++
			}
			ids = append(ids, req.header.Get("webhook-id"))
		}
		if n != 7 {
			t.Errorf("%s: %d events arrived, want 7", format, n)
		}
		if ids[0] == ids[1] || ids[1] == ids[2] {
			t.Errorf("%s: batches share a webhook-id: %v", format, ids)
		}
	}
}

// A retried batch has the same webhook-id; the failure says when to retry.
func TestRetrySameID(t *testing.T) {
	r := newReceiver(t, status(503, "Retry-After", "7"), status(429, "Retry-After", "2"), status(200))
	s := newSender(t, r, []logstream.Secret{newSecret(t)}, logstream.FormatJSON, logstream.Options{})
	batch := events(4)
	wants := []struct {
		wait time.Duration
		code int
	}{{7 * time.Second, 503}, {2 * time.Second, 429}}
	for _, want := range wants {
		res, err := s.Send(context.Background(), batch)
		var le *logstream.Error
		if !errors.As(err, &le) || le.Class != logstream.Retryable || le.RetryAfter != want.wait || le.Status != want.code || res.Delivered != 0 {
			t.Fatalf("answer %d: %+v, %v; want retryable after %v", want.code, res, err, want.wait)
		}
	}
	if res, err := s.Send(context.Background(), batch); err != nil || res.Delivered != 4 {
		t.Fatalf("third try: %+v, %v", res, err)
	}
	got := r.requests()
	if len(got) != 3 || got[0].header.Get("webhook-id") != got[2].header.Get("webhook-id") || got[1].header.Get("webhook-id") != got[2].header.Get("webhook-id") {
		t.Fatalf("retries do not share the webhook-id")
	}
	if got[0].header.Get("webhook-id") != MessageID("stream-1", logstream.FormatJSON, batch[0].ID, batch[3].ID, 4) {
		t.Error("webhook-id is not MessageID of the batch")
	}
	if MessageID("stream-2", logstream.FormatJSON, batch[0].ID, batch[3].ID, 4) == got[0].header.Get("webhook-id") {
		t.Error("two streams give one batch the same id")
	}
}

// Failures are classified, and delivery stops at the first: the engine
// acknowledges exactly the events delivered before it.
func TestFailures(t *testing.T) {
	secret := newSecret(t)
	redirected := make(chan struct{}, 1)
	target := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { redirected <- struct{}{} }))
	defer target.Close()

	tests := []struct {
		name      string
		answers   []func(http.ResponseWriter)
		class     logstream.Class
		delivered int
	}{
		{"bad request", []func(http.ResponseWriter){status(400)}, logstream.Permanent, 0},
		{"unauthorized", []func(http.ResponseWriter){status(401)}, logstream.Permanent, 0},
		{"gone", []func(http.ResponseWriter){status(410)}, logstream.Permanent, 0},
		{"timeout status", []func(http.ResponseWriter){status(408)}, logstream.Retryable, 0},
		{"server error", []func(http.ResponseWriter){status(500)}, logstream.Retryable, 0},
		{"second request fails", []func(http.ResponseWriter){status(200), status(502)}, logstream.Retryable, 2},
		{"redirect", []func(http.ResponseWriter){status(307, "Location", target.URL)}, logstream.Permanent, 0},
	}
	for _, tt := range tests {
		r := newReceiver(t, tt.answers...)
		s := newSender(t, r, []logstream.Secret{secret}, logstream.FormatJSON, logstream.Options{Limits: logstream.Limits{MaxEvents: 2}})
		res, err := s.Send(context.Background(), events(5))
		if err == nil || logstream.ClassOf(err) != tt.class || res.Delivered != tt.delivered {
			t.Errorf("%s: %+v, %v; want %v after %d delivered", tt.name, res, err, tt.class, tt.delivered)
		}
		noSecrets(t, tt.name, err, secret)
	}
	select {
	case <-redirected:
		t.Error("a redirect was followed")
	default:
	}
}

// noSecrets fails if err shows the secret or the URL's token.
func noSecrets(t *testing.T, name string, err error, secret logstream.Secret) {
	t.Helper()
	if err == nil {
		return
	}
	text := err.Error()
	if u := errors.Unwrap(err); u != nil {
		text += " " + u.Error()
	}
	for _, s := range []string{secret.Reveal(), strings.TrimPrefix(secret.Reveal(), "whsec_"), "url-secret"} {
		if strings.Contains(text, s) {
			t.Errorf("%s: the error shows a secret: %s", name, text)
		}
	}
}

// The network failures: an untrusted certificate and the egress policy are
// permanent; a time-out and a refused connection are not.
func TestNetworkFailures(t *testing.T) {
	secret := newSecret(t)
	r := newReceiver(t)

	s := newSender(t, r, []logstream.Secret{secret}, logstream.FormatJSON, logstream.Options{RootCAs: x509.NewCertPool()})
	_, err := s.Send(context.Background(), events(1))
	if logstream.ClassOf(err) != logstream.Permanent || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: %v, want a permanent certificate failure", err)
	}
	noSecrets(t, "untrusted certificate", err, secret)

	s = newSender(t, r, []logstream.Secret{secret}, logstream.FormatJSON, logstream.Options{Policy: egress.NewPolicy(nil)})
	_, err = s.Send(context.Background(), events(1))
	if logstream.ClassOf(err) != logstream.Permanent || !strings.Contains(err.Error(), "egress policy") {
		t.Errorf("egress: %v, want a permanent egress refusal", err)
	}
	if n := len(r.requests()); n != 0 {
		t.Errorf("the receiver got %d requests despite the failures", n)
	}

	// A receiver that never answers: the request time-out ends the wait.
	release := make(chan struct{})
	slow := newReceiver(t, func(http.ResponseWriter) {
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
	})
	defer close(release)
	s = newSender(t, slow, []logstream.Secret{secret}, logstream.FormatJSON, logstream.Options{RequestTimeout: 300 * time.Millisecond})
	start := time.Now()
	_, err = s.Send(context.Background(), events(1))
	if logstream.ClassOf(err) != logstream.Retryable || time.Since(start) > 5*time.Second {
		t.Errorf("time-out: %v after %v, want retryable soon", err, time.Since(start))
	}
	noSecrets(t, "time-out", err, secret)

	// Nobody listening.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	closed, err := New(logstream.WebhookConfig{URL: "https://" + addr + "/x", Secrets: []logstream.Secret{secret}, Format: logstream.FormatJSON},
		logstream.Options{Policy: loopback, RootCAs: r.pool})
	if err != nil {
		t.Fatal(err)
	}
	_, err = closed.Send(context.Background(), events(1))
	if logstream.ClassOf(err) != logstream.Retryable || !strings.Contains(err.Error(), "refused") {
		t.Errorf("closed port: %v, want retryable refused", err)
	}
}

// Test sends one signed test event and shows the start of the answer,
// however large the answer is.
func TestTest(t *testing.T) {
	secret := newSecret(t)
	big := strings.Repeat("x", 1<<20)
	r := newReceiver(t, func(w http.ResponseWriter) {
		w.WriteHeader(200)
		io.WriteString(w, "ok "+big)
	}, status(403))
	s := newSender(t, r, []logstream.Secret{secret}, logstream.FormatOCSF, logstream.Options{})
	res, err := s.Test(context.Background())
	if err != nil || res.Status != 200 || !strings.HasPrefix(res.Body, "ok xxx") || len(res.Body) > logstream.TestBodyBytes {
		t.Fatalf("Test = %d %q (%d bytes), %v", res.Status, res.Body[:min(20, len(res.Body))], len(res.Body), err)
	}
	req := r.requests()[0]
	wh, _ := standardwebhooks.NewWebhook(secret.Reveal())
	if err := wh.Verify(req.body, req.header); err != nil {
		t.Errorf("the test event does not verify: %v", err)
	}
	var p payload
	if err := json.Unmarshal(req.body, &p); err != nil || p.Type != TypeTest || len(p.Data.Events) != 1 {
		t.Errorf("test payload: %v %s", err, req.body)
	}
	res, err = s.Test(context.Background())
	if logstream.ClassOf(err) != logstream.Permanent || res.Status != 403 || res.Body != `{"status":403}` {
		t.Errorf("refused test: %+v, %v", res, err)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	good := logstream.WebhookConfig{URL: "https://siem.example.com/x", Secrets: []logstream.Secret{newSecret(t)}, Format: logstream.FormatJSON}
	if _, err := New(good, logstream.Options{}); err == nil {
		t.Error("no policy was accepted")
	}
	bad := good
	bad.Secrets = []logstream.Secret{"whsec_short"}
	if _, err := New(bad, logstream.Options{Policy: loopback}); domain.CodeOf(err) != domain.CodeBadUserInput {
		t.Errorf("a bad secret: %v", err)
	}
}

// The sender is what the delivery engine drives.
var _ logstream.Sender = (*Sender)(nil)
