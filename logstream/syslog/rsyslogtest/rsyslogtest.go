// Package rsyslogtest runs a real rsyslogd for tests: Debian's, receiving
// RFC 5425 syslog over TLS on a loopback port with a certificate signed by
// a CA made for the test, and writing each message's parsed fields as one
// line that the test reads back. The syslog sender's tests and auditd's
// end-to-end log stream test share it (make test-syslog).
package rsyslogtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
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
)

// rsyslogdPath is Debian's rsyslogd; RSYSLOGD overrides it.
func rsyslogdPath() string {
	if p := os.Getenv("RSYSLOGD"); p != "" {
		return p
	}
	return "/usr/sbin/rsyslogd"
}

// Receiver is a private rsyslogd receiving RFC 5425 syslog over TLS on a
// loopback port and writing each message, parsed, as one line of out.
type Receiver struct {
	// Port is its TLS port on 127.0.0.1.
	Port int
	// CA signed its certificate, for 127.0.0.1 and localhost.
	CA *x509.Certificate
	// CAFile is CA in PEM, for a process told to trust it (SSL_CERT_FILE).
	CAFile string
	out    string
}

// Start starts rsyslogd in its own directory with a certificate for
// 127.0.0.1 and localhost signed by a CA made here, and stops it when the
// test ends.
func Start(t testing.TB) *Receiver {
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

	port := FreePort(t)
	r := &Receiver{Port: port, CA: ca, CAFile: filepath.Join(dir, "ca.pem"), out: filepath.Join(dir, "out.log")}
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

// Lines waits until rsyslogd's output holds at least n lines, and returns them.
func (r *Receiver) Lines(t testing.TB, n int) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		lines := r.Written()
		if len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslog wrote %d of %d lines within 15s:\n%s", len(lines), n, strings.Join(lines, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Written is the lines rsyslogd has written so far, whole lines only.
func (r *Receiver) Written() []string {
	b, _ := os.ReadFile(r.out)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return strings.Split(string(b[:i]), "\n")
	}
	return nil
}

// FreePort is a loopback port nothing listens on.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func makeCA(t testing.TB) (*x509.Certificate, *ecdsa.PrivateKey) {
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

func makeLeaf(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey) ([]byte, *ecdsa.PrivateKey) {
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

func writeCert(t testing.TB, path string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// RootCAs is a pool holding r's CA, for a sender that must verify it.
func (r *Receiver) RootCAs() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(r.CA)
	return p
}

// Fields splits one of Lines' lines into rsyslog's parsed fields: PRI,
// TIMESTAMP, HOSTNAME, APP-NAME, PROCID, MSGID, STRUCTURED-DATA and MSG.
func Fields(line string) []string { return strings.SplitN(line, "\t", 8) }
