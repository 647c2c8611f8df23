//go:build rsyslog

package syslog

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditlog/auditlog/egress"
	"github.com/auditlog/auditlog/logstream"
	"github.com/auditlog/auditlog/ocsf"
)

// rsyslogdPath is Debian's rsyslogd; RSYSLOGD overrides it.
func rsyslogdPath() string {
	if p := os.Getenv("RSYSLOGD"); p != "" {
		return p
	}
	return "/usr/sbin/rsyslogd"
}

// rsyslog is a private rsyslogd receiving RFC 5425 syslog over TLS on a
// loopback port and writing each message, parsed, as one line of out.
type rsyslog struct {
	port int
	ca   *x509.Certificate
	out  string
}

// startRsyslog starts rsyslogd in its own directory with a certificate for
// 127.0.0.1 and localhost signed by a CA made here, and stops it when the
// test ends.
func startRsyslog(t *testing.T) *rsyslog {
	t.Helper()
	if _, err := os.Stat(rsyslogdPath()); err != nil {
		t.Fatalf("rsyslogd not found at %s (apt-get install rsyslog rsyslog-gnutls, or set RSYSLOGD): %v", rsyslogdPath(), err)
	}
	dir := t.TempDir()
	ca, caKey := makeCA(t)
	writeCert(t, filepath.Join(dir, "ca.pem"), ca.Raw)
	leaf, leafKey := makeLeaf(t, ca, caKey)
	writeCert(t, filepath.Join(dir, "cert.pem"), leaf)
	der, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}

	port := freePort(t)
	r := &rsyslog{port: port, ca: ca, out: filepath.Join(dir, "out.log")}
	// The fields separated by tabs, so the test sees how rsyslog parsed
	// each part of the message; %rawmsg-after-pri% shows the whole.
	conf := fmt.Sprintf(`
global(
  workDirectory=%[1]q
  maxMessageSize="64k"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile=%[2]q
  defaultNetstreamDriverCertFile=%[3]q
  defaultNetstreamDriverKeyFile=%[4]q
)
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port="%[5]d")
template(name="fields" type="string"
  string="%%pri%%\t%%timereported:::date-rfc3339%%\t%%hostname%%\t%%app-name%%\t%%procid%%\t%%msgid%%\t%%structured-data%%\t%%msg%%\n")
action(type="omfile" file=%[6]q template="fields")
`, dir, filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), port, r.out)
	confPath := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "rsyslogd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(rsyslogdPath(), "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})

	// Up when its port accepts connections.
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return r
		}
		select {
		case err := <-done:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("rsyslogd exited (%v) before listening (is rsyslog-gnutls installed?):\n%s", err, log)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("rsyslogd did not listen on %d within 15s:\n%s", port, log)
		}
	}
}

// lines waits until out holds at least n lines, and returns them.
func (r *rsyslog) lines(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(r.out)
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(b) > 0 && len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslog wrote %d of %d lines within 15s:\n%s", len(lines), n, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func makeCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "logstream test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

func makeLeaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func writeCert(t *testing.T, path string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newSender(t *testing.T, r *rsyslog, format logstream.Format, opts logstream.Options) *Sender {
	t.Helper()
	if opts.Policy == nil {
		opts.Policy = loopback
	}
	if opts.RootCAs == nil {
		opts.RootCAs = x509.NewCertPool()
		opts.RootCAs.AddCert(r.ca)
	}
	opts.OrgID, opts.StreamID = "org-1", "stream-1"
	opts.Product = ocsf.Product{Name: "Audit Log", VendorName: "Example"}
	s, err := New(logstream.SyslogConfig{Host: "127.0.0.1", Port: r.port, ServerName: "localhost", Format: format}, opts, "auditd-1.example")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A real rsyslog receives the batch over TLS, splits the octet-counted
// frames and parses every RFC 5424 field as meant.
func TestRsyslogReceives(t *testing.T) {
	r := startRsyslog(t)
	ctx := context.Background()

	s := newSender(t, r, logstream.FormatJSON, logstream.Options{Limits: logstream.Limits{MaxEvents: 2}})
	batch := events(5)
	res, err := s.Send(ctx, batch)
	if err != nil || res.Delivered != 5 {
		t.Fatalf("Send: %+v, %v", res, err)
	}
	ocsfSender := newSender(t, r, logstream.FormatOCSF, logstream.Options{})
	if _, err := ocsfSender.Send(ctx, batch[:1]); err != nil {
		t.Fatalf("Send OCSF: %v", err)
	}
	if _, err := s.Test(ctx); err != nil {
		t.Fatalf("Test: %v", err)
	}

	lines := r.lines(t, 7)
	for i, line := range lines {
		f := strings.Split(line, "\t")
		if len(f) != 8 {
			t.Fatalf("line %d has %d fields: %q", i, len(f), line)
		}
		pri, ts, host, app, procid, msgid, sd, msg := f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]
		if pri != "110" || host != "auditd-1.example" || app != AppName || procid != "-" {
			t.Errorf("line %d: pri %s host %s app %s procid %s", i, pri, host, app, procid)
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(strings.TrimSpace(msg)), &ev); err != nil {
			t.Fatalf("line %d: MSG is not JSON: %v: %q", i, err, msg)
		}
		switch {
		case i < 5:
			e := batch[i]
			if msgid != string(e.Type) || !strings.HasPrefix(ts, "2026-03-01T12:00:00.123456") {
				t.Errorf("line %d: msgid %s time %s", i, msgid, ts)
			}
			wantSD := fmt.Sprintf(`[%s id="%s" leafIndex="%d" org="org-1"]`, SDID, e.ID, *e.LeafIndex)
			if sd != wantSD {
				t.Errorf("line %d: structured data %s, want %s", i, sd, wantSD)
			}
			if ev["id"] != e.ID || ev["leafIndex"] != float64(*e.LeafIndex) || ev["actor"].(map[string]any)["name"] != e.Actor.Name {
				t.Errorf("line %d: event %v", i, ev)
			}
		case i == 5:
			if ev["class_uid"] != float64(ocsf.ClassAccountChange) || ev["metadata"].(map[string]any)["uid"] != batch[0].ID {
				t.Errorf("OCSF line: %v", ev)
			}
		case i == 6:
			if msgid != string(logstream.TestEventType) || !strings.HasPrefix(ev["id"].(string), "test-") {
				t.Errorf("test line: msgid %s event %v", msgid, ev)
			}
		}
	}
}

// A receiver whose certificate the sender's roots do not vouch for, or a
// name the certificate does not carry, is refused, as is an address the
// egress policy refuses: all permanent.
func TestRsyslogRefusals(t *testing.T) {
	r := startRsyslog(t)
	ctx := context.Background()
	tests := []struct {
		name, want string
		opts       logstream.Options
		serverName string
	}{
		{"unknown CA", "certificate", logstream.Options{RootCAs: x509.NewCertPool()}, "localhost"},
		{"wrong name", "certificate", logstream.Options{}, "logs.example.com"},
		{"egress", "egress policy", logstream.Options{Policy: egress.NewPolicy(nil)}, "localhost"},
	}
	for _, tt := range tests {
		s := newSender(t, r, logstream.FormatJSON, tt.opts)
		s.cfg.ServerName = tt.serverName
		res, err := s.Send(ctx, events(1))
		if logstream.ClassOf(err) != logstream.Permanent || res.Delivered != 0 || err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %+v, %v; want a permanent failure about %s", tt.name, res, err, tt.want)
		}
	}
	// Nothing listening: retryable.
	s := newSender(t, r, logstream.FormatJSON, logstream.Options{})
	s.cfg.Port = freePort(t)
	if _, err := s.Send(ctx, events(1)); logstream.ClassOf(err) != logstream.Retryable {
		t.Errorf("closed port: %v, want retryable", err)
	}
}
