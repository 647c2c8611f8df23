// Package natsx runs the embedded NATS server and declares the JetStream
// streams and subjects the audit log lives in.
package natsx

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// Export job names: jobs live in a key-value bucket keyed <org>.<job>; the
// work queue holds one message per job to run; finished files go to the
// object store bucket of the organization's region.
const (
	ExportJobsBucket  = "AUDIT_EXPORT_JOBS"
	ExportQueueStream = "AUDITEXPORT"
	exportQueuePrefix = "auditexport.jobs."
)

// ExportQueueSubject is where a job to run in region r is queued.
func ExportQueueSubject(r domain.Region) string { return exportQueuePrefix + r.Lower() }

// ExportFilesBucket names the object store of region r's export files.
func ExportFilesBucket(r domain.Region) string { return "AUDIT_EXPORTS_" + string(r) }

// ExportJobKey is the key of job id of org in ExportJobsBucket.
func ExportJobKey(org, id string) string { return org + "." + id }

// AuditStream names the stream of region r: AUDIT_<REGION>.
func AuditStream(r domain.Region) string { return "AUDIT_" + string(r) }

// AuditSubject is where event e of region r is appended:
// audit.<region>.<org>.<source>.<type>.
func AuditSubject(r domain.Region, e *domain.Event) string {
	return "audit." + r.Lower() + "." + e.OrgID + "." + string(e.Source) + "." + string(e.Type)
}

// IsAuditSubjectOf reports whether subject is where ingest would have
// appended e in some region: a message whose subject and body disagree on
// org, source or type was not written by ingest.
func IsAuditSubjectOf(subject string, e *domain.Event) bool {
	parts := strings.Split(subject, ".")
	return len(parts) == 5 && parts[0] == "audit" &&
		parts[1] == strings.ToLower(parts[1]) && domain.Region(strings.ToUpper(parts[1])).Valid() &&
		parts[2] == e.OrgID && parts[3] == string(e.Source) && parts[4] == string(e.Type)
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
	// ExportTTL is how long finished export files are kept (default 24h).
	ExportTTL time.Duration
	// ExportJobTTL is how long export jobs are listed (default 7 days).
	ExportJobTTL time.Duration
	// ExportAckWait is how long a job may go without a heartbeat from the
	// instance running it before another instance takes it over.
	ExportAckWait time.Duration
}

// MaxLiveConsumers bounds the consumers of one regional stream, nearly all
// of them live subscriptions' ordered consumers.
const MaxLiveConsumers = 10_000

// Defaults of the export settings.
const (
	DefaultExportTTL     = 24 * time.Hour
	DefaultExportJobTTL  = 7 * 24 * time.Hour
	DefaultExportAckWait = 30 * time.Second
)

// WithDefaults fills the zero export settings with their defaults.
func (s Streams) WithDefaults() Streams {
	s.Replicas = max(s.Replicas, 1)
	if s.ExportTTL == 0 {
		s.ExportTTL = DefaultExportTTL
	}
	if s.ExportJobTTL == 0 {
		s.ExportJobTTL = DefaultExportJobTTL
	}
	if s.ExportAckWait == 0 {
		s.ExportAckWait = DefaultExportAckWait
	}
	return s
}

// Ensure creates or updates the regional audit streams and the control
// stream. Audit streams deny delete and purge: only MaxAge removes events.
func (s Streams) Ensure(ctx context.Context, js jetstream.JetStream) error {
	s = s.WithDefaults()
	replicas := s.Replicas
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
			// Every live subscription reads through a consumer of its own;
			// the server's default of 1,000 per stream is too few.
			MaxConsumers: MaxLiveConsumers,
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
	return s.ensureExports(ctx, js)
}

// ensureExports declares the export job bucket, the work queue and each
// region's file bucket; files stay in their region like the events they hold.
func (s Streams) ensureExports(ctx context.Context, js jetstream.JetStream) error {
	_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      ExportJobsBucket,
		Description: "audit export jobs, keyed <org>.<job>",
		TTL:         s.ExportJobTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    s.Replicas,
	})
	if err != nil {
		return fmt.Errorf("ensure bucket %s: %w", ExportJobsBucket, err)
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        ExportQueueStream,
		Description: "export jobs waiting for a worker",
		Subjects:    []string{exportQueuePrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.WorkQueuePolicy,
		Duplicates:  time.Hour,
		Replicas:    s.Replicas,
	})
	if err != nil {
		return fmt.Errorf("ensure stream %s: %w", ExportQueueStream, err)
	}
	for _, r := range domain.Regions {
		cfg := jetstream.ObjectStoreConfig{
			Bucket:      ExportFilesBucket(r),
			Description: "audit export files stored in region " + string(r),
			TTL:         s.ExportTTL,
			Storage:     jetstream.FileStorage,
			Replicas:    s.Replicas,
		}
		if s.Placement {
			cfg.Placement = &jetstream.Placement{Tags: []string{"region:" + r.Lower()}}
		}
		if _, err := js.CreateOrUpdateObjectStore(ctx, cfg); err != nil {
			return fmt.Errorf("ensure bucket %s: %w", cfg.Bucket, err)
		}
	}
	return nil
}
