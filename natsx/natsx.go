// Package natsx runs the embedded NATS server and declares the JetStream
// streams and subjects the audit log lives in.
package natsx

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditlog/auditlog/domain"
)

// Embedded configures an in-process NATS server with JetStream.
type Embedded struct {
	// Dir holds JetStream's file storage.
	Dir string
	// Host and Port to listen on; Port -1 picks a free port.
	Host string
	Port int
}

// Start starts the embedded server and waits until it accepts connections.
func (e Embedded) Start() (*server.Server, error) {
	host := e.Host
	if host == "" {
		host = "127.0.0.1"
	}
	opts := &server.Options{
		ServerName: "auditd",
		Host:       host,
		Port:       e.Port,
		JetStream:  true,
		StoreDir:   e.Dir,
		NoSigs:     true,
		NoLog:      true,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded nats: not ready after 10s")
	}
	return ns, nil
}

// Connect dials url with reconnects that never give up, as a long-running
// service wants.
func Connect(url, name string) (*nats.Conn, error) {
	nc, err := nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("connect nats %s: %w", url, err)
	}
	return nc, nil
}

// Stream and subject names of the contract.
const (
	ControlStream  = "AUDITCTL"
	controlSubject = "auditctl.org."
	// IngestSubjectPrefix is where internal services publish events to record
	// (request-reply): auditlog.ingest.<source>.
	IngestSubjectPrefix = "auditlog.ingest."
)

// AuditStream names the stream of region r: AUDIT_<REGION>.
func AuditStream(r domain.Region) string { return "AUDIT_" + string(r) }

// AuditSubject is where event e of region r is appended:
// audit.<region>.<org>.<source>.<type>.
func AuditSubject(r domain.Region, e *domain.Event) string {
	return "audit." + r.Lower() + "." + e.OrgID + "." + string(e.Source) + "." + string(e.Type)
}

// OrgSubjects matches every event of org in region r.
func OrgSubjects(r domain.Region, org string) string {
	return "audit." + r.Lower() + "." + org + ".>"
}

// ControlSubject holds the settings changes of org.
func ControlSubject(org string) string { return controlSubject + org }

// Streams configures the streams EnsureStreams declares.
type Streams struct {
	// DuplicateWindow is how long JetStream remembers event ids.
	DuplicateWindow time.Duration
	// MaxAge is the retention of audit events; 0 keeps them forever.
	MaxAge time.Duration
	// Replicas per stream (1 for a single server).
	Replicas int
	// Placement pins each regional stream to servers tagged region:<r>; only
	// meaningful in a cluster.
	Placement bool
}

// Ensure creates or updates the regional audit streams and the control
// stream. Audit streams deny delete and purge: only MaxAge removes events.
func (s Streams) Ensure(ctx context.Context, js jetstream.JetStream) error {
	replicas := max(s.Replicas, 1)
	for _, r := range domain.Regions {
		cfg := jetstream.StreamConfig{
			Name:        AuditStream(r),
			Description: "audit events stored in region " + string(r),
			Subjects:    []string{"audit." + r.Lower() + ".>"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Duplicates:  s.DuplicateWindow,
			MaxAge:      s.MaxAge,
			Replicas:    replicas,
			DenyDelete:  true,
			DenyPurge:   true,
		}
		if s.Placement {
			cfg.Placement = &jetstream.Placement{Tags: []string{"region:" + r.Lower()}}
		}
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
		}
	}
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        ControlStream,
		Description: "audit log settings changes, one subject per organization",
		Subjects:    []string{controlSubject + ">"},
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		AllowDirect: true,
		DenyDelete:  true,
		DenyPurge:   true,
	})
	if err != nil {
		return fmt.Errorf("ensure stream %s: %w", ControlStream, err)
	}
	return nil
}
