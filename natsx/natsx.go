// Package natsx runs the embedded NATS server and declares the JetStream
// streams and subjects the audit log lives in.
package natsx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
)

// InboxPrefix replaces _INBOX for auditd's own connections. JetStream API
// replies and the events auditd's consumers fetch go to this prefix, which
// no ingest client may subscribe to and auditd's responder may not publish
// to.
const InboxPrefix = "_AUDITD_INBOX"

// ReplyPrefix starts every subject auditd answers an ingest request on. Each
// ingest client owns _INBOX.<user> (IngestInboxPrefix); auditd's responder
// may publish under _INBOX and nowhere else.
const ReplyPrefix = "_INBOX."

// maxReplyLen bounds a reply subject: nats.go's inboxes are about 50 bytes.
const maxReplyLen = 256

// serviceUser is the embedded server's account for auditd itself;
// responderUser is the one that answers ingest requests.
const (
	serviceUser   = "auditd"
	responderUser = "auditd-responder"
)

// IngestInboxPrefix is the inbox prefix ingest client user must connect
// with (nats.CustomInboxPrefix): its replies arrive under it, and it may
// subscribe to nothing else, so no client reads another's replies.
func IngestInboxPrefix(user string) string { return ReplyPrefix + user }

// ValidReply reports whether subject may receive an answer to an ingest
// request: a literal subject under _INBOX. with non-empty tokens. Anything
// else (auditd's own subjects, key-value and stream subjects, wildcards) is
// a caller trying to make auditd speak where it chose; the request is
// dropped unanswered.
func ValidReply(subject string) bool {
	if len(subject) <= len(ReplyPrefix) || len(subject) > maxReplyLen || !strings.HasPrefix(subject, ReplyPrefix) {
		return false
	}
	for tok := range strings.SplitSeq(subject[len(ReplyPrefix):], ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
			return false
		}
	}
	return true
}

// validUserName is what an ingest user may be called: one subject token,
// since it names the user's inbox.
func validUserName(name string) bool {
	return name != "" && len(name) <= 64 && !strings.ContainsAny(name, ". *>\t\r\n")
}

// User is a name and password an ingest client authenticates with.
type User struct {
	Name     string
	Password string
}

// Embedded configures an in-process NATS server with JetStream. No client
// connects anonymously: auditd connects in-process as a user with a random
// password, and the optional listener admits only Ingest users, who may do
// nothing but request auditlog.ingest.<source>.
type Embedded struct {
	// Dir holds JetStream's file storage.
	Dir string
	// Listen is the host:port of a client listener for ingest clients; port
	// -1 picks a free one. Empty (the default) opens no listener at all.
	Listen string
	// Ingest are the users that may connect through Listen.
	Ingest []User
}

// Local is a running embedded server and the credentials of its service
// and responder users, which only connections made in this process can use.
type Local struct {
	*server.Server
	password, responderPassword string
}

// IngestPermissions is all ingest client user may do: request
// auditlog.ingest.<source> and receive the replies in its own inbox,
// IngestInboxPrefix(user).
func IngestPermissions(user string) *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{IngestSubjectPrefix + ">"}},
		Subscribe: &server.SubjectPermission{Allow: []string{IngestInboxPrefix(user) + ".>"}},
	}
}

// ResponderPermissions is all the connection answering ingest requests may
// do: take the requests (and the micro service's discovery requests) and
// publish replies under _INBOX. Whatever reply subject a caller names,
// NATS itself refuses any answer outside the inbox space.
func ResponderPermissions() *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{ReplyPrefix + ">"}},
		Subscribe: &server.SubjectPermission{Allow: []string{IngestSubjectPrefix + ">", "$SRV.>"}},
	}
}

// Start starts the embedded server and waits until it accepts connections.
func (e Embedded) Start() (*Local, error) {
	opts, password, err := e.options()
	if err != nil {
		return nil, err
	}
	responderPassword, err := randomPassword()
	if err != nil {
		return nil, err
	}
	opts.Users = append(opts.Users, &server.User{
		Username:               responderUser,
		Password:               responderPassword,
		Permissions:            ResponderPermissions(),
		AllowedConnectionTypes: map[string]struct{}{"IN_PROCESS": {}},
	})
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded nats: not ready after 10s")
	}
	return &Local{Server: ns, password: password, responderPassword: responderPassword}, nil
}

// options builds the server options: the service user, reachable only in
// process, and the ingest users, reachable only through the listener.
func (e Embedded) options() (*server.Options, string, error) {
	password, err := randomPassword()
	if err != nil {
		return nil, "", err
	}
	opts := &server.Options{
		ServerName: "auditd",
		DontListen: true,
		JetStream:  true,
		StoreDir:   e.Dir,
		NoSigs:     true,
		NoLog:      true,
		Users: []*server.User{{
			Username:               serviceUser,
			Password:               password,
			AllowedConnectionTypes: map[string]struct{}{"IN_PROCESS": {}},
		}},
	}
	if e.Listen == "" {
		if len(e.Ingest) > 0 {
			return nil, "", errors.New("embedded nats: ingest users without a listener")
		}
		return opts, password, nil
	}
	host, port, err := net.SplitHostPort(e.Listen)
	if err != nil {
		return nil, "", fmt.Errorf("embedded nats: listen address %q: %w", e.Listen, err)
	}
	if opts.Port, err = strconv.Atoi(port); err != nil {
		return nil, "", fmt.Errorf("embedded nats: listen address %q: bad port", e.Listen)
	}
	if len(e.Ingest) == 0 {
		return nil, "", errors.New("embedded nats: a listener needs at least one ingest user")
	}
	opts.DontListen, opts.Host = false, host
	for _, u := range e.Ingest {
		switch {
		case u.Name == "" || u.Password == "":
			return nil, "", errors.New("embedded nats: an ingest user needs a name and a password")
		case u.Name == serviceUser || u.Name == responderUser:
			return nil, "", fmt.Errorf("embedded nats: ingest user may not be named %q", u.Name)
		case !validUserName(u.Name):
			return nil, "", fmt.Errorf("embedded nats: ingest user %q: a name is one subject token (no '.', '*', '>' or spaces), since it names the user's inbox", u.Name)
		}
		opts.Users = append(opts.Users, &server.User{
			Username:               u.Name,
			Password:               u.Password,
			Permissions:            IngestPermissions(u.Name),
			AllowedConnectionTypes: map[string]struct{}{"STANDARD": {}},
		})
	}
	return opts, password, nil
}

// ListenURL is the client URL of the ingest listener, or "" when there is
// none.
func (l *Local) ListenURL() string {
	if l.Addr() == nil {
		return ""
	}
	return l.ClientURL()
}

// Connect connects in process as the service user, with every right.
func (l *Local) Connect(name string) (*nats.Conn, error) {
	return connect("", name, nats.InProcessServer(l.Server), nats.UserInfo(serviceUser, l.password))
}

// ConnectResponder connects in process as the responder user, which may
// publish only under _INBOX (ResponderPermissions), with opts added.
func (l *Local) ConnectResponder(name string, opts ...nats.Option) (*nats.Conn, error) {
	return connect("", name, append(opts, nats.InProcessServer(l.Server), nats.UserInfo(responderUser, l.responderPassword))...)
}

func randomPassword() (string, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", fmt.Errorf("embedded nats: password: %w", err)
	}
	return hex.EncodeToString(secret), nil
}

// Credentials authenticate auditd to an external NATS server: a user and
// password, or a credentials file (user JWT and nkey seed). None is
// anonymous.
type Credentials struct {
	User, Password string
	File           string
}

// Empty reports whether c names no user and no file.
func (c Credentials) Empty() bool { return c.User == "" && c.File == "" }

func (c Credentials) options() []nats.Option {
	var opts []nats.Option
	if c.User != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.File != "" {
		opts = append(opts, nats.UserCredentials(c.File))
	}
	return opts
}

// Connect dials an external NATS at url with creds and opts, with
// reconnects that never give up, as a long-running service wants.
func Connect(url, name string, creds Credentials, opts ...nats.Option) (*nats.Conn, error) {
	return connect(url, name, append(opts, creds.options()...)...)
}

func connect(url, name string, opts ...nats.Option) (*nats.Conn, error) {
	opts = append(opts, nats.Name(name), nats.CustomInboxPrefix(InboxPrefix),
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		if url == "" {
			url = "in process"
		}
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

// CheckpointStream keeps every signed checkpoint of every organization's
// Merkle tree, immutably: a checkpoint once issued is evidence of what the
// log held, so the stream denies delete and purge and has no age limit.
const (
	CheckpointStream  = "AUDITLOG_CHECKPOINTS"
	checkpointSubject = "auditlog.checkpoint."
)

// CheckpointSubject is where the checkpoints of org, stored in region r, go:
// auditlog.checkpoint.<region>.<org>.
func CheckpointSubject(r domain.Region, org string) string {
	return checkpointSubject + r.Lower() + "." + org
}

// CheckpointSubjects matches the checkpoints of every org of region r.
func CheckpointSubjects(r domain.Region) string { return checkpointSubject + r.Lower() + ".>" }

// Export job names: jobs live in a key-value bucket keyed <org>.<job>; the
// work queue holds one message per job to run; finished files go to the
// object store bucket of the organization's region.
const (
	ExportJobsBucket  = "AUDIT_EXPORT_JOBS"
	ExportQueueStream = "AUDITEXPORT"
	exportQueuePrefix = "auditexport.jobs."
)

// APQBucket is the key-value bucket of automatic persisted queries: the
// GraphQL text of each query a client sent with its SHA-256, keyed by the
// hash, shared by every instance.
const APQBucket = "AUDIT_APQ"

// DefaultAPQTTL is how long a persisted query is kept after it was last sent
// with its text; a client whose hash is forgotten sends the text again.
const DefaultAPQTTL = 24 * time.Hour

// DefaultAPQMaxBytes bounds the persisted query bucket: room for 4,096
// queries of the largest size, or over 100,000 ordinary ones, and small
// beside any JetStream's storage, so persisted queries cannot crowd out
// the events.
const DefaultAPQMaxBytes = 64 << 20

// ExportQueueSubject is where a job to run in region r is queued.
func ExportQueueSubject(r domain.Region) string { return exportQueuePrefix + r.Lower() }

// ExportFilesBucket names the object store of region r's export files.
func ExportFilesBucket(r domain.Region) string { return "AUDIT_EXPORTS_" + string(r) }

// ExportJobKey is the key of job id of org in ExportJobsBucket.
func ExportJobKey(org, id string) string { return org + "." + id }

// AuditStream names the stream of region r: AUDIT_<REGION>.
func AuditStream(r domain.Region) string { return "AUDIT_" + string(r) }

// AuditSubject is where event e of region r is appended:
// audit.<region>.<org>.<source>.<type>. The stream stores it with the org's
// slot appended (see Slots).
func AuditSubject(r domain.Region, e *domain.Event) string {
	return "audit." + r.Lower() + "." + e.OrgID + "." + string(e.Source) + "." + string(e.Type)
}

// Slots is how many org-hash slots a regional stream's subjects carry. The
// stream's own subject transform appends an event's slot s, NATS's
// deterministic partition (FNV-1a) of its org token, as six tokens: s mod 2,
// s mod 4, s mod 8, s mod 16, s mod 32 and s mod 64. Every event is stored as
// audit.<region>.<org>.<source>.<type>.<s%2>.<s%4>.<s%8>.<s%16>.<s%32>.<s%64>.
// Projection partitions are sets of slots, so one org always lands in one
// partition and keeps its order; the tokens let partition i of any power of
// two P read its slots through one subject filter (token log2(P) equal to
// i), which JetStream serves far faster than a list of filters. The number
// is baked into stored subjects: it never changes.
const Slots = 64

// slotLevels is log2(Slots): the slot tokens appended to a subject.
const slotLevels = 6

// SlotOf is org's slot: what the stream's {{partition(Slots,1)}} transform
// computes, FNV-1a of the org token.
func SlotOf(org string) int {
	h := fnv.New32a()
	h.Write([]byte(org))
	return int(h.Sum32() % Slots)
}

// slotTokens are the tokens the stream appends for slot: slot mod 2, 4, …
// 64.
func slotTokens(slot int) []string {
	out := make([]string, slotLevels)
	for j := range out {
		out[j] = strconv.Itoa(slot % (2 << j))
	}
	return out
}

// slotTransform appends the slot tokens to every subject ingest publishes
// to. Each is NATS's partition of the org token into 2, 4, … 64, which
// agree: (h mod 64) mod 2^j is h mod 2^j.
func slotTransform(r domain.Region) *jetstream.SubjectTransformConfig {
	dest := "audit." + r.Lower() + ".{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}"
	for j := range slotLevels {
		dest += fmt.Sprintf(".{{partition(%d,1)}}", 2<<j)
	}
	return &jetstream.SubjectTransformConfig{Source: LegacySubjects(r), Destination: dest}
}

// ValidPartitionCount says whether events can be projected by count
// partitions: a power of two up to Slots, so that each partition is one
// subject filter.
func ValidPartitionCount(count int) bool {
	return count >= 1 && count <= Slots && count&(count-1) == 0
}

// PartitionSubjects matches every event of region r in partition i of
// count (ValidPartitionCount): the slots s with s mod count = i.
func PartitionSubjects(r domain.Region, i, count int) string {
	tokens := []string{"audit", r.Lower(), "*", "*", "*"}
	for j := range slotLevels {
		if 2<<j == count {
			tokens = append(tokens, strconv.Itoa(i))
		} else {
			tokens = append(tokens, "*")
		}
	}
	return strings.Join(tokens, ".")
}

// LegacySubjects matches the events of region r stored before the stream
// appended slots: audit.<region>.<org>.<source>.<type>.
func LegacySubjects(r domain.Region) string { return "audit." + r.Lower() + ".*.*.*" }

// IsAuditSubjectOf reports whether subject is where ingest would have
// appended e in some region, with e's slot or (stored before slots) none: a
// message whose subject and body disagree on org, source, type or slot was
// not written by ingest, and a wrong slot would put the org's events in two
// partitions.
func IsAuditSubjectOf(subject string, e *domain.Event) bool {
	parts := strings.Split(subject, ".")
	if len(parts) == 5+slotLevels {
		if !slices.Equal(parts[5:], slotTokens(SlotOf(e.OrgID))) {
			return false
		}
		parts = parts[:5]
	}
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
	// MaxAge is how long a regional stream keeps a message when Retention
	// names no period for its region; 0 keeps them forever.
	MaxAge time.Duration
	// Retention is how long each region's read model keeps events. A
	// region's stream keeps its messages RetentionMargin longer (see
	// MaxAgeOf); a region absent or 0 uses MaxAge.
	Retention map[domain.Region]time.Duration
	// Replicas per stream (1 for a single server).
	Replicas int
	// Placement pins each regional stream to servers tagged region:<r>; only
	// meaningful in a cluster.
	Placement bool
	// ExportTTL is how long finished export files are kept (default 24h).
	ExportTTL time.Duration
	// ExportJobTTL is how long export jobs are listed (default 7 days).
	ExportJobTTL time.Duration
	// APQTTL is how long a persisted query is kept (default DefaultAPQTTL).
	APQTTL time.Duration
	// APQMaxBytes bounds the persisted query bucket's storage (default
	// DefaultAPQMaxBytes); a full bucket refuses new queries.
	APQMaxBytes int64
	// ExportAckWait is how long a job may go without a heartbeat from the
	// instance running it before another instance takes it over.
	ExportAckWait time.Duration
	// Log gets a warning for each existing stream or bucket whose replicas
	// or placement Ensure changes; the zero Logger logs nothing.
	Log zerolog.Logger
}

// RetentionMargin is how much longer a regional stream keeps a message than
// the read model keeps its event, so the stream always holds at least what
// the read model shows. JetStream ages a message by when it was stored; the
// read model drops an event by when it occurred, and only with its whole
// month, once the month's last instant is past retention. An event occurs at
// most domain.MaxFutureSkewLimit (12 hours) after it is stored, its month
// ends at most 31 days after it occurred, and enforcement runs daily, so its
// row can outlive the retention by 32 and a half days after it was stored.
// 33 days covers that.
const RetentionMargin = 33 * 24 * time.Hour

// MaxAgeOf is the maximum age of region r's stream: its retention plus
// RetentionMargin, or MaxAge when the region keeps events forever.
func (s Streams) MaxAgeOf(r domain.Region) time.Duration {
	if p := s.Retention[r]; p > 0 {
		return p + RetentionMargin
	}
	return s.MaxAge
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
	if s.APQTTL == 0 {
		s.APQTTL = DefaultAPQTTL
	}
	if s.APQMaxBytes == 0 {
		s.APQMaxBytes = DefaultAPQMaxBytes
	}
	return s
}

// Ensure creates or updates the regional audit streams and the control
// stream. Audit streams deny delete and purge: only MaxAge removes events,
// and an existing stream gets the MaxAge of the current retention. Before
// each stream or bucket it logs what changes in an existing one's replicas
// or placement, and it asks again, for up to EnsurePatience, while
// JetStream gives no answer.
func (s Streams) Ensure(ctx context.Context, js jetstream.JetStream) error {
	s = s.WithDefaults()
	js = s.patient(js)
	replicas := s.Replicas
	for _, r := range domain.Regions {
		cfg := jetstream.StreamConfig{
			Name:        AuditStream(r),
			Description: "audit events stored in region " + string(r),
			Subjects:    []string{"audit." + r.Lower() + ".>"},
			// Appends each event's slot, which projection partitions by.
			SubjectTransform: slotTransform(r),
			Storage:          jetstream.FileStorage,
			Retention:        jetstream.LimitsPolicy,
			Duplicates:       s.DuplicateWindow,
			MaxAge:           s.MaxAgeOf(r),
			Replicas:         replicas,
			DenyDelete:       true,
			DenyPurge:        true,
			// Every live subscription reads through a consumer of its own;
			// the server's default of 1,000 per stream is too few.
			MaxConsumers: MaxLiveConsumers,
		}
		if s.Placement {
			cfg.Placement = &jetstream.Placement{Tags: []string{"region:" + r.Lower()}}
		}
		chk := s.check(ctx, js, "stream", cfg.Name, cfg.Name, layoutOf(cfg.Replicas, cfg.Placement))
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return chk.fail(err)
		}
	}
	for _, st := range []struct {
		name, description, subjects string
		direct                      bool
	}{
		// No direct gets on settings: a follower answers one from what it
		// has applied, which can lag an acknowledged opt-in or opt-out by
		// milliseconds, and an instance reading there would store events
		// after an opt-out or drop them after an opt-in. The leader has
		// applied every change it acknowledged.
		{ControlStream, "audit log settings changes, one subject per organization", controlSubject + ">", false},
		// A checkpoint read a moment stale is still a signed checkpoint,
		// and the proofs against it still hold.
		{CheckpointStream, "signed checkpoints of each organization's Merkle tree", checkpointSubject + ">", true},
	} {
		// Kept for ever and never edited: a settings history and signed
		// checkpoints are records in their own right.
		chk := s.check(ctx, js, "stream", st.name, st.name, layoutOf(replicas, nil))
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        st.name,
			Description: st.description,
			Subjects:    []string{st.subjects},
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
			AllowDirect: st.direct,
			DenyDelete:  true,
			DenyPurge:   true,
		})
		if err != nil {
			return chk.fail(err)
		}
	}
	if err := s.ensureExports(ctx, js); err != nil {
		return err
	}
	if err := s.ensureLeases(ctx, js); err != nil {
		return err
	}
	return s.ensureAPQ(ctx, js)
}

// LeasesBucket holds the slots of the per-organization limits every
// instance shares (package leases): live.<org>.<n> for live subscriptions,
// export.<org>.<n> for active exports.
const LeasesBucket = "AUDIT_LEASES"

// LeaseMarkerTTL is how long the leases bucket keeps the marker of a slot
// that expired or was freed.
const LeaseMarkerTTL = time.Minute

// ensureLeases declares the leases bucket: one revision per key, per-key
// TTLs allowed. File storage, because export slots have no TTL and must
// outlive a NATS restart, or the jobs running then would stop counting.
func (s Streams) ensureLeases(ctx context.Context, js jetstream.JetStream) error {
	_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         LeasesBucket,
		Description:    "slots of the per-organization limits, keyed <limit>.<org>.<slot>",
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       s.Replicas,
		LimitMarkerTTL: LeaseMarkerTTL,
	})
	if err != nil {
		return fmt.Errorf("ensure bucket %s: %w", LeasesBucket, err)
	}
	return nil
}

// ensureAPQ declares the persisted query bucket. Queries are at most
// MaxAPQQueryBytes, the bucket at most APQMaxBytes, and one a client stops
// sending expires. An existing bucket gets the current limits: a bucket
// made before they existed had none.
func (s Streams) ensureAPQ(ctx context.Context, js jetstream.JetStream) error {
	chk := s.check(ctx, js, "bucket", APQBucket, "KV_"+APQBucket, layoutOf(s.Replicas, nil))
	_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:       APQBucket,
		Description:  "automatic persisted GraphQL queries, keyed by their SHA-256",
		TTL:          s.APQTTL,
		MaxValueSize: MaxAPQQueryBytes,
		MaxBytes:     s.APQMaxBytes,
		Storage:      jetstream.FileStorage,
		Replicas:     s.Replicas,
	})
	if err != nil {
		return chk.fail(err)
	}
	return nil
}

// MaxAPQQueryBytes is the largest query the persisted query bucket holds:
// over ten times the console's largest query, and a quarter of the API's
// query size limit, which longer queries still meet when sent as text.
const MaxAPQQueryBytes = 16 << 10

// ensureExports declares the export job bucket, the work queue and each
// region's file bucket; files stay in their region like the events they hold.
func (s Streams) ensureExports(ctx context.Context, js jetstream.JetStream) error {
	chk := s.check(ctx, js, "bucket", ExportJobsBucket, "KV_"+ExportJobsBucket, layoutOf(s.Replicas, nil))
	_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      ExportJobsBucket,
		Description: "audit export jobs, keyed <org>.<job>",
		TTL:         s.ExportJobTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    s.Replicas,
	})
	if err != nil {
		return chk.fail(err)
	}
	chk = s.check(ctx, js, "stream", ExportQueueStream, ExportQueueStream, layoutOf(s.Replicas, nil))
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
		return chk.fail(err)
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
		chk := s.check(ctx, js, "bucket", cfg.Bucket, "OBJ_"+cfg.Bucket, layoutOf(cfg.Replicas, cfg.Placement))
		if _, err := js.CreateOrUpdateObjectStore(ctx, cfg); err != nil {
			return chk.fail(err)
		}
	}
	return nil
}

// responderProbe is a subject outside the inbox space that nothing listens
// on; the responder's permissions must refuse it.
const responderProbe = "auditd.responder.probe"

// ErrResponderUnrestricted says the connection that answers ingest requests
// may publish outside _INBOX, so only auditd's own reply check stands
// between a caller's reply subject and auditd's subjects.
var ErrResponderUnrestricted = errors.New("the NATS user answering ingest requests may publish outside " + ReplyPrefix + ">")

// IsProbeViolation reports whether err is NATS refusing CheckResponder's
// probe, which an error handler need not report.
func IsProbeViolation(err error) bool {
	return errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+responderProbe+`"`)
}

// CheckResponder proves that NATS refuses nc a publish outside the inbox
// space: it publishes to a subject nobody reads and expects the server's
// permissions violation before the flush returns (the server answers in
// order). It returns ErrResponderUnrestricted when the publish went
// through.
func CheckResponder(nc *nats.Conn) error {
	if err := nc.Publish(responderProbe, nil); err != nil {
		return fmt.Errorf("responder permission probe: %w", err)
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		return fmt.Errorf("responder permission probe: %w", err)
	}
	if IsProbeViolation(nc.LastError()) {
		return nil
	}
	return ErrResponderUnrestricted
}
