package natsx

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func start(t *testing.T, e Embedded) *Local {
	t.Helper()
	e.Dir = t.TempDir()
	l, err := e.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Shutdown(); l.WaitForShutdown() })
	return l
}

func TestEmbeddedHasNoListenerByDefault(t *testing.T) {
	l := start(t, Embedded{})
	if l.Addr() != nil || l.ListenURL() != "" {
		t.Fatalf("embedded server listens on %v (%q) with no listener configured", l.Addr(), l.ListenURL())
	}
	nc, err := l.Connect("test")
	if err != nil {
		t.Fatalf("in-process service connection: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AccountInfo(context.Background()); err != nil {
		t.Fatalf("service user cannot use JetStream: %v", err)
	}
}

// TestEmbeddedRefusesClients holds every way in that must fail: no
// credentials, wrong ones, and each user on the kind of connection it is not
// for.
func TestEmbeddedRefusesClients(t *testing.T) {
	ingest := User{Name: "ingest", Password: "ingest-password"}
	l := start(t, Embedded{Listen: "127.0.0.1:-1", Ingest: []User{ingest}})
	url := l.ListenURL()
	if url == "" {
		t.Fatal("no listener")
	}
	// A refused in-process client sees its pipe closed rather than an
	// authorization error; the timeout keeps that from taking 10s.
	inProcess := nats.InProcessServer(l.Server)
	quick := nats.Timeout(time.Second)
	tests := []struct {
		name string
		url  string
		opts []nats.Option
		ok   bool
	}{
		{"anonymous over TCP", url, nil, false},
		{"anonymous in process", "", []nats.Option{inProcess, quick}, false},
		{"ingest user with a wrong password", url, []nats.Option{nats.UserInfo(ingest.Name, "guess")}, false},
		{"service user over TCP, even with its password", url, []nats.Option{nats.UserInfo(serviceUser, l.password)}, false},
		{"ingest user in process", "", []nats.Option{inProcess, quick, nats.UserInfo(ingest.Name, ingest.Password)}, false},
		{"ingest user over TCP", url, []nats.Option{nats.UserInfo(ingest.Name, ingest.Password)}, true},
		{"service user in process", "", []nats.Option{inProcess, nats.UserInfo(serviceUser, l.password)}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			nc, err := nats.Connect(tc.url, tc.opts...)
			if err == nil {
				defer nc.Close()
			}
			switch {
			case tc.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.ok && err == nil:
				t.Fatal("connected")
			case !tc.ok && tc.url != "" && !strings.Contains(strings.ToLower(err.Error()), "authorization"):
				t.Fatalf("refused for another reason: %v", err)
			case !tc.ok:
				t.Logf("refused in %v: %v", time.Since(start).Round(time.Millisecond), err)
			}
		})
	}
}

func TestEmbeddedConfigErrors(t *testing.T) {
	user := User{Name: "ingest", Password: "pw"}
	tests := []struct {
		name string
		e    Embedded
		want string
	}{
		{"listener without users", Embedded{Listen: "127.0.0.1:-1"}, "at least one ingest user"},
		{"users without listener", Embedded{Ingest: []User{user}}, "without a listener"},
		{"user without password", Embedded{Listen: "127.0.0.1:-1", Ingest: []User{{Name: "ingest"}}}, "name and a password"},
		{"user named like the service", Embedded{Listen: "127.0.0.1:-1", Ingest: []User{{Name: serviceUser, Password: "pw"}}}, "may not be named"},
		{"address without port", Embedded{Listen: "127.0.0.1", Ingest: []User{user}}, "listen address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.e.Dir = t.TempDir()
			l, err := tc.e.Start()
			if err == nil {
				l.Shutdown()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestValidReply: auditd answers only literal subjects under _INBOX.
func TestValidReply(t *testing.T) {
	for subject, want := range map[string]bool{
		"_INBOX.ingest.abc.1":                true,
		"_INBOX.x":                           true,
		"":                                   false,
		"_INBOX":                             false,
		"_INBOX.":                            false,
		"_INBOX..x":                          false,
		"_INBOX.x.":                          false,
		"_INBOX.*":                           false,
		"_INBOX.>":                           false,
		"_INBOX.a b":                         false,
		"_INBOXED.x":                         false,
		"_AUDITD_INBOX.x":                    false,
		"auditctl.org.acme":                  false,
		"$KV.AUDIT_LEASES.live.beta.1":       false,
		"$JS.API.STREAM.DELETE.AUDIT_US":     false,
		"_INBOX." + strings.Repeat("x", 300): false,
		"audit.us.acme.PLATFORM.USER_CREATED._INBOX": false,
	} {
		if got := ValidReply(subject); got != want {
			t.Errorf("ValidReply(%q) = %v, want %v", subject, got, want)
		}
	}
}
