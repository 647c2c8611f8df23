package syslog

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/egress"
	"github.com/auditlog/auditlog/logstream"
)

var loopback = egress.NewPolicy([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")})

func events(n int) []*domain.Event {
	out := make([]*domain.Event, n)
	for i := range out {
		leaf := int64(200 + i)
		out[i] = &domain.Event{
			ID: fmt.Sprintf("01JSYSLOG%04d", i), OrgID: "org-1", Source: domain.SourcePlatform, Type: "USER_CREATED",
			OccurredAt: time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC), RecordedAt: time.Date(2026, 3, 1, 12, 0, 1, 0, time.UTC),
			Actor:   domain.Actor{Kind: domain.ActorUser, ID: "u-1", Name: "Zoë \"Z\" Ünal"},
			Details: json.RawMessage(`{"userId":"u-2","userEmail":"b@example.com"}`), LeafIndex: &leaf,
		}
	}
	return out
}

func TestMessage(t *testing.T) {
	e := events(1)[0]
	e.ID = `a"b]c\d`
	e.Type = domain.TypeAuditLogSettingsDenied
	got := string(Message(e, "host name with spaces", []byte(`{"x":1}`)))
	want := `<108>1 2026-03-01T12:00:00.123456Z host_name_with_spaces auditlog - AUDIT_LOG_SETTINGS_DENIED [auditlog@32473 id="a\"b\]c\\d" leafIndex="200" org="org-1"] {"x":1}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	e.LeafIndex = nil
	e.Type = "A_VERY_LONG_EVENT_TYPE_NAME_BEYOND_THIRTY_TWO"
	got = string(Message(e, "", nil))
	if !strings.Contains(got, " - auditlog - A_VERY_LONG_EVENT_TYPE_NAME_BEYO [") || strings.Contains(got, "leafIndex") {
		t.Errorf("empty host, long type, no leaf: %s", got)
	}
	for _, tt := range []struct{ msg, want string }{
		{"", "0 "},
		{"abc", "3 abc"},
		{"é", "2 é"},
	} {
		if got := string(Frame([]byte(tt.msg))); got != tt.want {
			t.Errorf("Frame(%q) = %q, want %q", tt.msg, got, tt.want)
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	if _, err := New(logstream.SyslogConfig{Host: "x.example", Port: 6514, Format: logstream.FormatJSON}, logstream.Options{}, "h"); err == nil {
		t.Error("no policy was accepted")
	}
	_, err := New(logstream.SyslogConfig{Host: "x.example", Port: 0, Format: logstream.FormatJSON}, logstream.Options{Policy: loopback}, "h")
	if domain.CodeOf(err) != domain.CodeBadUserInput {
		t.Errorf("port 0: %v", err)
	}
}

// The sender is what the delivery engine drives.
var _ logstream.Sender = (*Sender)(nil)

// tlsReceiver listens on loopback over TLS with a certificate for
// 127.0.0.1 and hands each connection to handle; it returns its port and
// the pool that trusts it.
func tlsReceiver(t *testing.T, handle func(net.Conn)) (int, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); handle(c) }()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, pool
}

// A batch counts as delivered only once the receiver closes its side
// after reading up to our close_notify: a receiver that reads every byte
// but never closes has confirmed nothing, and the whole batch is to be
// sent again.
func TestDeliveredOnlyWhenTheReceiverCloses(t *testing.T) {
	cases := []struct {
		name      string
		closes    bool
		delivered int
	}{
		{"receiver closes after the alert", true, 5},
		{"receiver reads and never closes", false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			got := make(chan int, 1)
			port, pool := tlsReceiver(t, func(c net.Conn) {
				b, _ := io.ReadAll(c) // until close_notify
				got <- len(b)
				if !tc.closes {
					<-release
				}
			})
			s, err := New(logstream.SyslogConfig{Host: "127.0.0.1", Port: port, Format: logstream.FormatJSON},
				logstream.Options{Policy: loopback, RootCAs: pool, RequestTimeout: 300 * time.Millisecond}, "auditd-1.example")
			if err != nil {
				t.Fatal(err)
			}
			res, err := s.Send(context.Background(), events(5))
			if n := <-got; n != res.Bytes || n == 0 {
				t.Errorf("the receiver read %d bytes; the sender wrote %d", n, res.Bytes)
			}
			if res.Delivered != tc.delivered {
				t.Errorf("delivered %d, want %d (err %v)", res.Delivered, tc.delivered, err)
			}
			if tc.closes != (err == nil) {
				t.Errorf("err = %v", err)
			}
			if err != nil && logstream.ClassOf(err) != logstream.Retryable {
				t.Errorf("an unconfirmed batch is not retryable: %v", err)
			}
		})
	}
}
