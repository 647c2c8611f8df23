// Package config is auditd's one configuration type, Config, and the
// table of its settings (Settings): each flag and environment variable,
// its default and meaning. Load reads them for every command, refusing a
// malformed or out-of-range value by name; Print shows the effective
// configuration without secrets, and Markdown is the reference table of
// docs/operations.md.
package config

import (
	"crypto/x509"
	"net/netip"
	"time"

	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/live"
	"github.com/auditlog/auditlog/natsx"
)

// Config is everything auditd needs to start: what the operator sets
// (Settings lists each flag and environment variable, and Load reads them)
// and what cmd/auditd builds from it (Verifier, Log). Go callers such as
// tests fill it directly.
//
// The zero value of a duration or count means its default, so that a
// literal Config gets defaults; a negative value means never or none. In
// flags and environment variables, 0 means never or none (Load turns it
// into the negative value).
type Config struct {
	// Addr is the HTTP listen address; ":0" picks a free port.
	Addr string
	// DataDir holds the embedded NATS server's storage.
	DataDir string
	// NATSURL selects an external NATS; empty starts an embedded server.
	NATSURL string
	// NATSCredentials authenticate auditd to the external NATS at NATSURL.
	NATSCredentials natsx.Credentials
	// NATSResponderCredentials authenticate the connection that answers
	// NATS ingest requests on an external NATS: a user that may publish
	// only to _INBOX.> (natsx.ResponderPermissions). Required with
	// NATSURL; the embedded server makes such a user itself.
	NATSResponderCredentials natsx.Credentials
	// NATSListen opens a client listener on the embedded server (host:port,
	// port -1 for a free one) for NATS ingest clients; empty opens none,
	// and auditd connects in process.
	NATSListen string
	// NATSIngestUsers may connect through NATSListen, and may only request
	// auditlog.ingest.<source>; each request still needs a service token.
	NATSIngestUsers []natsx.User
	// DatabaseURL holds the control schema and, by default, every region's schema.
	DatabaseURL string
	// RegionDatabaseURLs gives a region its own database.
	RegionDatabaseURLs map[domain.Region]string
	// Verifier authenticates bearer tokens.
	Verifier *auth.Verifier
	// Streams configures the JetStream streams.
	Streams natsx.Streams
	// RequestTimeout bounds one GraphQL request from its arrival, parsing,
	// validation and SQL included; each event of a subscription gets as
	// long again.
	RequestTimeout time.Duration
	// MaxRequestBytes bounds a /query request body; default
	// server.DefaultMaxRequestBytes.
	MaxRequestBytes int64
	// BodyBudget bounds the bytes of /query bodies all requests hold in
	// memory at once; default server.DefaultBodyBudget, never below
	// MaxRequestBytes.
	BodyBudget int64
	// BodyWait is how long a request waits for its share of BodyBudget
	// before it is refused with 503; default server.DefaultBodyWait.
	BodyWait time.Duration
	// MaxResponseBytes bounds the data of one GraphQL answer; a larger one
	// is replaced by a RESPONSE_TOO_LARGE error. Default
	// server.DefaultMaxResponseBytes.
	MaxResponseBytes int
	// Introspection enables GraphQL schema introspection.
	Introspection bool
	// AllowedOrigins are the host patterns of browser pages, other than the
	// API's own origin, that may open websockets (e.g. "app.example.com").
	AllowedOrigins []string
	// WebsocketWriteTimeout bounds one websocket write; a client that does
	// not read for that long is disconnected. Default 10s.
	WebsocketWriteTimeout time.Duration
	// Live bounds live subscriptions.
	Live live.Limits
	// DownloadKey signs export download links; empty means a random key,
	// so links work only on the instance that made them.
	DownloadKey []byte
	// PublicURL is the base of the links the API hands out, such as export
	// download URLs (e.g. https://audit.example.com); empty means the
	// origin each request came to.
	PublicURL string
	// ExportWorkers is how many exports this instance runs at once
	// (default 2); negative runs none.
	ExportWorkers int
	// StallAfter is how long a read model may stay behind its stream with
	// its checkpoint not moving before /readyz calls it stalled (default 30s).
	StallAfter time.Duration
	// ReconcileEvery is how often the regional read models are compared
	// with their streams and repaired (default 1h; negative never).
	ReconcileEvery time.Duration
	// ReadWindow is how long one reader's same read of the log is recorded
	// once (default 10 minutes).
	ReadWindow time.Duration
	// SearchBudget is the database time one page or count of auditEvents
	// may spend before it answers with what it found and a cursor to
	// continue (default 80 ms, search.DefaultBudget).
	SearchBudget time.Duration
	// SearchFirstSlice is the rows a search's first slice looks at (default
	// search.DefaultFirstSlice); tests make it small to stop searches early.
	SearchFirstSlice int
	// Retention is how long each region keeps its events after they
	// occurred (see ParseRetention); a region absent or 0 keeps them for
	// ever. Its stream keeps messages natsx.RetentionMargin longer.
	Retention map[domain.Region]time.Duration
	// RetentionFloor is the shortest retention New accepts; zero means
	// DefaultRetentionFloor and a negative value no floor at all, which
	// only tests want.
	RetentionFloor time.Duration
	// ClockTolerance is how far the host's clock may differ from the
	// region's Postgres clock before retention refuses to act (default
	// server.DefaultClockTolerance).
	ClockTolerance time.Duration
	// MaxFutureSkew is how far in the future an event's occurredAt may
	// lie (default domain.MaxClockSkew, at most domain.MaxFutureSkewLimit).
	MaxFutureSkew time.Duration
	// RetentionEvery is how often expired months are dropped, besides once
	// at start (default DefaultRetentionEvery; negative never).
	RetentionEvery time.Duration
	// SigningKey is the note signer key (golang.org/x/mod/sumdb/note,
	// Ed25519) that signs the checkpoints of every organization's tree. It
	// is secret and never logged. Empty uses a development key kept in
	// DataDir, generated the first time.
	SigningKey string
	// EncryptionKey seals log stream destination secrets (secretbox);
	// nil leaves server to decide (a development key with the embedded
	// NATS, none otherwise).
	EncryptionKey []byte
	// EncryptionKeysPrevious still open secrets sealed before a rotation.
	EncryptionKeysPrevious [][]byte
	// EgressAllow are the non-public prefixes log streams may reach.
	EgressAllow []netip.Prefix
	// LogStreamPauseAfter pauses a stream failing this long; negative
	// never, 0 the default.
	LogStreamPauseAfter time.Duration
	// LogStreamRootCAs verify log stream destinations' certificates; nil
	// is the system's roots. Tests set their receivers' CA.
	LogStreamRootCAs *x509.CertPool
	// LogStreamTick is how often an instance looks for log streams nobody
	// delivers (0: delivery.DefaultTick); tests shorten it.
	LogStreamTick time.Duration
	// ProjectionPartitions is how many partitions project each regional
	// stream, shared by every instance (1 to projector.MaxPartitions). It
	// seeds a new deployment's layout and never changes an existing one:
	// that is `auditd projections partitions N`. Zero means 1; the flag's
	// default is 4, chosen from `auditbench -only partitions` (see
	// docs/operations.md#partitioned-projection-and-capacity).
	ProjectionPartitions int
	// BenchWithoutIntegrity makes the read models keep no records and
	// build no hash trees (readmodel.EventStore.WithoutIntegrity), so that
	// auditbench can measure what integrity costs. No flag or environment
	// variable sets it: a deployment running so could prove nothing.
	BenchWithoutIntegrity bool
	// HolderTimeout is how long a session holding projection locks (or
	// this instance's membership) may be silent before Postgres ends it, so
	// that a frozen or cut-off instance's partitions go to the others
	// (default projector.DefaultHolderTimeout).
	HolderTimeout time.Duration
	// RebalanceEvery is how often an instance takes or hands back
	// partitions (default 1s): how long a dead instance's partitions wait
	// at most, once Postgres has ended its sessions.
	RebalanceEvery time.Duration
	// CheckpointEvery is how often an organization whose tree has grown
	// gets a new signed checkpoint (default 1m; negative never: checkpoints
	// are then issued only when asked for).
	CheckpointEvery time.Duration
	// CheckpointMinInterval is how often reads (auditLogCheckpoint, proofs)
	// may issue a new signed checkpoint for one organization; within it
	// they get the latest (default server.DefaultCheckpointMinInterval; negative:
	// no limit).
	CheckpointMinInterval time.Duration
	// Log is the root logger.
	Log zerolog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Operator settings that cmd/auditd turns into the fields above (the
	// verifier, the logger, the ingest users); Config keeps them so that
	// `auditd config` can show them. Secrets are never printed.
	JWTSecret, JWKS, JWTIssuer, JWTAudience       string
	MaxUserTokenLifetime, MaxServiceTokenLifetime time.Duration
	LogLevel                                      string
	NATSIngestUser, NATSIngestPassword            string

	// sources says where each setting's value came from (default,
	// environment, flag), and text what it was, by name.
	sources, text map[string]string
}
