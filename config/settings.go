package config

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/egress"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/projector"
	"github.com/auditlog/auditlog/search"
	"github.com/auditlog/auditlog/secretbox"
)

// Defaults of the settings that several packages name.
const (
	// DefaultRetentionFloor is the shortest retention accepted unless
	// --retention-floor says otherwise.
	DefaultRetentionFloor = 365 * domain.Day
	// DefaultStallAfter and DefaultReconcileEvery: see --stall-after and
	// --reconcile-every.
	DefaultStallAfter     = 30 * time.Second
	DefaultReconcileEvery = time.Hour
	// DefaultCheckpointEvery: see --checkpoint-every.
	DefaultCheckpointEvery = time.Minute
	// DefaultExportWorkers: see --export-workers.
	DefaultExportWorkers = 2
	// DefaultLogStreamPauseAfter: see AUDITD_LOG_STREAM_PAUSE_AFTER.
	DefaultLogStreamPauseAfter = 72 * time.Hour
)

// Scope says which commands read a setting.
type Scope int

const (
	// Shared settings are read by every command that opens the stores:
	// serve, projections rebuild, reconcile and partitions.
	Shared Scope = iota
	// Serve settings are read by serve only.
	Serve
)

// Setting is one flag, environment variable, or both.
type Setting struct {
	// Flag is the flag's name without dashes; empty for a setting read
	// from the environment only (passwords and keys).
	Flag string
	// Env is the environment variable; empty for a flag only. A variable
	// set to the empty string counts as unset.
	Env string
	// Default is the value used when neither is set; empty for none.
	Default string
	// DocDefault describes the default in the reference, when Default
	// alone does not.
	DocDefault string
	// Meaning is the reference's description, in Markdown.
	Meaning string
	Scope   Scope
	// Secret settings are shown as "(set)" or "(unset)", never their value.
	Secret bool
	// URL settings are shown with their password redacted.
	URL bool
	// Bool flags may be given without a value.
	Bool bool
	// set parses v into c; its error need not name the setting.
	set func(c *Config, v string) error
}

// Name is the setting's name in messages and in `auditd config`: its flag,
// else its environment variable.
func (s *Setting) Name() string {
	if s.Flag != "" {
		return "--" + s.Flag
	}
	return s.Env
}

func fmtDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func str(dst func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *dst(c) = v; return nil }
}

// positive parses a Go duration that must be above zero.
func positive(dst func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		if d <= 0 {
			return fmt.Errorf("must be positive, not %s", v)
		}
		*dst(c) = d
		return nil
	}
}

// period parses a Go duration where 0 means never: the field is then
// negative, which Config reads as never.
func period(dst func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		switch {
		case d < 0:
			return fmt.Errorf("must be 0 (never) or positive, not %s", v)
		case d == 0:
			d = -1
		}
		*dst(c) = d
		return nil
	}
}

// boolean accepts true or false only: any other value is a mistake, not off.
func boolean(dst func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("must be true or false, not %q", v)
		}
		*dst(c) = b
		return nil
	}
}

// Settings lists every setting auditd reads, in the order of the reference.
var Settings = []*Setting{
	// Shared by serve, rebuild, reconcile and partitions.
	{Flag: "database-url", Env: "DATABASE_URL", URL: true, Scope: Shared,
		Meaning: "Postgres URL. Empty: use a server on `127.0.0.1:5432` (user `postgres`) or start a private one under `<data-dir>/pg`, with a database `auditlog`, and log a warning",
		set:     str(func(c *Config) *string { return &c.DatabaseURL })},
	{Env: "DATABASE_URL_<REGION>", URL: true, Scope: Shared,
		Meaning: "a database of its own for one region: `DATABASE_URL_US`, `_EU`, `_CA`, `_AU`, `_AP`"},
	{Flag: "nats-url", Env: "NATS_URL", Scope: Shared,
		Meaning: "an external NATS server or cluster. Empty: run an embedded server",
		set:     str(func(c *Config) *string { return &c.NATSURL })},
	{Flag: "nats-user", Env: "NATS_USER", Scope: Shared,
		Meaning: "the user auditd authenticates as on `NATS_URL`",
		set:     str(func(c *Config) *string { return &c.NATSCredentials.User })},
	{Env: "NATS_PASSWORD", Secret: true, Scope: Shared,
		Meaning: "that user's password",
		set:     str(func(c *Config) *string { return &c.NATSCredentials.Password })},
	{Flag: "nats-creds", Env: "NATS_CREDS", Scope: Shared,
		Meaning: "a credentials file (user JWT and nkey seed) for `NATS_URL`",
		set:     str(func(c *Config) *string { return &c.NATSCredentials.File })},
	{Flag: "nats-responder-user", Env: "NATS_RESPONDER_USER", Scope: Shared,
		Meaning: "`serve` with `NATS_URL`: the user auditd answers NATS ingest requests as, allowed to publish to `_INBOX.>` only ([NATS permissions](#nats-permissions)). Required with `NATS_URL` (or `NATS_RESPONDER_CREDS`)",
		set:     str(func(c *Config) *string { return &c.NATSResponderCredentials.User })},
	{Env: "NATS_RESPONDER_PASSWORD", Secret: true, Scope: Shared,
		Meaning: "that user's password",
		set:     str(func(c *Config) *string { return &c.NATSResponderCredentials.Password })},
	{Flag: "nats-responder-creds", Env: "NATS_RESPONDER_CREDS", Scope: Shared,
		Meaning: "a credentials file of that user",
		set:     str(func(c *Config) *string { return &c.NATSResponderCredentials.File })},
	{Flag: "data-dir", Env: "AUDITD_DATA_DIR", Default: ".data", Scope: Shared,
		Meaning: "the embedded NATS server's storage (`<data-dir>/nats`), and the private Postgres cluster, if one is started",
		set:     str(func(c *Config) *string { return &c.DataDir })},
	{Flag: "log-level", Env: "AUDITD_LOG_LEVEL", Default: "info", Scope: Shared,
		Meaning: "`trace`, `debug`, `info`, `warn`, `error`",
		set: func(c *Config, v string) error {
			switch v {
			case "trace", "debug", "info", "warn", "error":
				c.LogLevel = v
				return nil
			}
			return fmt.Errorf("must be trace, debug, info, warn or error, not %q", v)
		}},
	{Flag: "dedupe-window", Default: "10m", Scope: Shared,
		Meaning: "how long the regional streams remember event ids ([de-duplication](architecture.md#message-identity-and-de-duplication))",
		set:     positive(func(c *Config) *time.Duration { return &c.Streams.DuplicateWindow })},
	{Flag: "replicas", Env: "AUDITD_REPLICAS", Default: "1", Scope: Shared,
		Meaning: "replicas of every stream and bucket auditd declares, 1 to 5. More than 1 needs a NATS cluster at `NATS_URL`: with the embedded server it stops the command at start ([cluster deployment](#deployment-on-a-nats-cluster))",
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 5 {
				return fmt.Errorf("--replicas (AUDITD_REPLICAS) must be a number from 1 to 5, JetStream's limit, not %q", v)
			}
			c.Streams.Replicas = n
			return nil
		}},
	{Flag: "region-placement", Env: "AUDITD_REGION_PLACEMENT", Default: "false", Bool: true, Scope: Shared,
		Meaning: "place each regional stream and export bucket on NATS servers tagged `region:<region>` (lower case); for clusters, so it needs `NATS_URL`. `true` or `false`; any other value stops the command",
		set:     boolean(func(c *Config) *bool { return &c.Streams.Placement })},
	{Flag: "retention", Env: "AUDITD_RETENTION", DocDefault: "none: for ever", Scope: Shared,
		Meaning: "how long each region keeps events after they occurred: `400d` for every region, `US=400d,EU=730d` per region (the others for ever), or `400d,EU=730d` (EU 730 days, the others 400). A period is whole days (`400d`), a Go duration (`9600h`), or `0` / `forever` ([retention](#retention))",
		set: func(c *Config, v string) error {
			r, err := ParseRetention(v)
			c.Retention = r
			return err
		}},
	{Flag: "retention-floor", Env: "AUDITD_RETENTION_FLOOR", Default: domain.FormatPeriod(DefaultRetentionFloor), Scope: Shared,
		Meaning: "the shortest retention accepted: a shorter one stops the command at start with `--retention of EU: retention 30d is below the floor of 365d`. Must be positive",
		set: func(c *Config, v string) error {
			floor, err := domain.ParsePeriod(v)
			if err != nil {
				return err
			}
			if floor <= 0 {
				return errors.New("--retention-floor must be positive: without a floor, a typo in --retention could remove most of the log")
			}
			c.RetentionFloor = floor
			return nil
		}},

	// serve only.
	{Flag: "addr", Env: "AUDITD_ADDR", Default: ":8080", Scope: Serve,
		Meaning: "HTTP listen address",
		set:     str(func(c *Config) *string { return &c.Addr })},
	{Flag: "public-url", Env: "AUDITD_PUBLIC_URL", DocDefault: "the origin of each request", Scope: Serve,
		Meaning: "base of the links the API hands out (export `downloadUrl`), e.g. `https://audit.example.com` behind a proxy",
		set:     str(func(c *Config) *string { return &c.PublicURL })},
	{Flag: "jwt-secret", Env: "AUDITD_JWT_SECRET", DocDefault: "a development secret, with a warning", Secret: true, Scope: Serve,
		Meaning: "HS256 secret of bearer tokens. Anyone who knows the development secret can sign tokens, so with it auditd listens on loopback only: `:8080` becomes `127.0.0.1:8080`, and a non-loopback address is refused at start. Set it (or `--jwks`) to serve anything else",
		set:     str(func(c *Config) *string { return &c.JWTSecret })},
	{Flag: "jwks", Env: "AUDITD_JWKS", Scope: Serve,
		Meaning: "a JWKS file, or an `http(s)` URL refreshed in the background. When set, tokens must be RS256 or ES256 signed by its keys, and HS256 tokens are refused",
		set:     str(func(c *Config) *string { return &c.JWKS })},
	{Env: "AUDITD_JWT_ISSUER", Scope: Serve,
		Meaning: "when set, a token's `iss` must equal it (`UNAUTHENTICATED` otherwise); `auditd token` puts it in the tokens it mints",
		set:     str(func(c *Config) *string { return &c.JWTIssuer })},
	{Env: "AUDITD_JWT_AUDIENCE", Scope: Serve,
		Meaning: "when set, a token's `aud` must name it (`UNAUTHENTICATED` otherwise); `auditd token` puts it in the tokens it mints",
		set:     str(func(c *Config) *string { return &c.JWTAudience })},
	{Flag: "max-user-token-lifetime", Default: fmtDur(auth.DefaultMaxUserLifetime), Scope: Serve,
		Meaning: "refuse user tokens that expire later than this from now",
		set:     positive(func(c *Config) *time.Duration { return &c.MaxUserTokenLifetime })},
	{Flag: "max-service-token-lifetime", Default: fmtDur(auth.DefaultMaxServiceLifetime), DocDefault: "`720h` (30 days)", Scope: Serve,
		Meaning: "refuse service tokens that expire later than this from now",
		set:     positive(func(c *Config) *time.Duration { return &c.MaxServiceTokenLifetime })},
	{Flag: "introspection", Env: "AUDITD_INTROSPECTION", Default: "true", Bool: true, Scope: Serve,
		Meaning: "allow GraphQL introspection: `true` or `false`; any other value stops `serve`",
		set:     boolean(func(c *Config) *bool { return &c.Introspection })},
	{Flag: "allowed-origins", Env: "AUDITD_ALLOWED_ORIGINS", Scope: Serve,
		Meaning: "comma-separated host patterns of browser pages, besides the API's own origin, that may open websockets, e.g. `app.example.com`",
		set: func(c *Config, v string) error {
			c.AllowedOrigins = nil
			if v != "" {
				c.AllowedOrigins = strings.Split(v, ",")
			}
			return nil
		}},
	{Flag: "download-key", Env: "AUDITD_DOWNLOAD_KEY", DocDefault: "derived", Secret: true, Scope: Serve,
		Meaning: "key that signs export download links. Default: derived from the JWT secret, so instances sharing the secret accept each other's links. With `--jwks` and no key, each instance uses a random key and logs a warning: a link then works only on the instance that signed it",
		set:     func(c *Config, v string) error { c.DownloadKey = []byte(v); return nil }},
	{Flag: "export-workers", Default: strconv.Itoa(DefaultExportWorkers), Scope: Serve,
		Meaning: "exports this instance encodes at once (W); up to max(W,2) read at once, taking 2,048-row turns, least recently served organization first ([architecture](architecture.md#exports)); `0` runs none",
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			switch {
			case err != nil || n < 0:
				return fmt.Errorf("must be a number, 0 (none) or more, not %q", v)
			case n == 0:
				n = -1
			}
			c.ExportWorkers = n
			return nil
		}},
	{Flag: "export-ttl", Default: fmtDur(natsx.DefaultExportTTL), Scope: Serve,
		Meaning: "how long export files are kept",
		set:     positive(func(c *Config) *time.Duration { return &c.Streams.ExportTTL })},
	{Flag: "max-future-skew", Env: "AUDITD_MAX_FUTURE_SKEW", Default: fmtDur(domain.MaxClockSkew), Scope: Serve,
		Meaning: "refuse an event whose `occurredAt` lies further than this ahead of the recording instance's clock (`BAD_USER_INPUT`, field `occurredAt`). A Go duration, positive and at most `12h` (the streams' retention margin assumes no more); a malformed or out-of-range value stops `serve` naming the variable",
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return err
			}
			if d <= 0 || d > domain.MaxFutureSkewLimit {
				return fmt.Errorf("--max-future-skew (AUDITD_MAX_FUTURE_SKEW) must be positive and at most %s, not %s", domain.MaxFutureSkewLimit, d)
			}
			c.MaxFutureSkew = d
			return nil
		}},
	{Flag: "export-ack-wait", Env: "AUDITD_EXPORT_ACK_WAIT", Default: fmtDur(natsx.DefaultExportAckWait), Scope: Serve,
		Meaning: "how long a running export may go without a heartbeat from its instance before another instance takes it over",
		set:     positive(func(c *Config) *time.Duration { return &c.Streams.ExportAckWait })},
	{Flag: "projection-partitions", Env: "AUDITD_PROJECTION_PARTITIONS", Default: strconv.Itoa(projector.DefaultPartitionCount), Scope: Serve,
		Meaning: "partitions projecting each regional stream, shared by every instance: a power of two from 1 to 64. It seeds a new deployment's layout and never changes an existing one; `auditd projections partitions N` does ([partitioned projection](#partitioned-projection-and-capacity))",
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || !natsx.ValidPartitionCount(n) {
				return fmt.Errorf("--projection-partitions must be a power of two from 1 to %d, not %q", natsx.Slots, v)
			}
			c.ProjectionPartitions = n
			return nil
		}},
	{Flag: "reconcile-every", Default: fmtDur(DefaultReconcileEvery), Scope: Serve,
		Meaning: "compare each regional stream with its read model, and repair, this often; `0` never ([reconciliation](#reconciliation))",
		set:     period(func(c *Config) *time.Duration { return &c.ReconcileEvery })},
	{Flag: "checkpoint-every", Default: fmtDur(DefaultCheckpointEvery), Scope: Serve,
		Meaning: "sign a checkpoint of each organization's tree that grew this often; `0` only when asked for",
		set:     period(func(c *Config) *time.Duration { return &c.CheckpointEvery })},
	{Flag: "search-budget", Env: "AUDITD_SEARCH_BUDGET", Default: fmtDur(search.DefaultBudget), Scope: Serve,
		Meaning: "database time one page or count of `auditEvents` may spend on a search no index serves before it answers with what it found, `complete: false`, `searchedThrough` and a cursor to continue ([Pages](api.md#pages))",
		set:     positive(func(c *Config) *time.Duration { return &c.SearchBudget })},
	{Flag: "stall-after", Default: fmtDur(DefaultStallAfter), Scope: Serve,
		Meaning: "call a projection stalled on `/readyz` (under `cluster`) when it is behind and its checkpoint has not moved for this long",
		set:     positive(func(c *Config) *time.Duration { return &c.StallAfter })},
	{Flag: "holder-timeout", Env: "AUDITD_HOLDER_TIMEOUT", Default: fmtDur(projector.DefaultHolderTimeout), Scope: Serve,
		Meaning: "how long a Postgres session holding projection locks, or an instance's membership, may be silent before Postgres ends it and the other instances take its partitions and log streams; at least 1s ([Frozen instances](#health-endpoints))",
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return err
			}
			if d < time.Second {
				return fmt.Errorf("--holder-timeout must be at least 1s (a live projector speaks every second), not %s", d)
			}
			c.HolderTimeout = d
			return nil
		}},
	{Env: "AUDITD_SIGNING_KEY", DocDefault: "a development key kept in `<data-dir>`, with a warning", Secret: true, Scope: Serve,
		Meaning: "the note signer key (`auditd keygen`) that signs every organization's checkpoints",
		set:     str(func(c *Config) *string { return &c.SigningKey })},
	{Env: "AUDITD_ENCRYPTION_KEY", DocDefault: "with the embedded NATS, a development key kept in `<data-dir>`, with a warning; with `NATS_URL`, none: log streams are then unavailable", Secret: true, Scope: Serve,
		Meaning: "32 bytes in base64 (`openssl rand -base64 32`) that encrypt log stream destination secrets (webhook signing secrets, Splunk tokens) at rest, AES-256-GCM, bound to each stream. Every instance needs the same key ([Log streams](#log-streams))",
		set: func(c *Config, v string) error {
			k, err := secretbox.ParseKey(v)
			if err != nil {
				return err
			}
			c.EncryptionKey = k
			return nil
		}},
	{Env: "AUDITD_ENCRYPTION_KEY_PREVIOUS", Secret: true, Scope: Serve,
		Meaning: "comma-separated keys that encrypted secrets before the current `AUDITD_ENCRYPTION_KEY`: they still open them while you rotate (secrets are sealed with the current key when next changed)",
		set: func(c *Config, v string) error {
			c.EncryptionKeysPrevious = nil
			for f := range strings.SplitSeq(v, ",") {
				if strings.TrimSpace(f) == "" {
					continue
				}
				k, err := secretbox.ParseKey(f)
				if err != nil {
					return err
				}
				c.EncryptionKeysPrevious = append(c.EncryptionKeysPrevious, k)
			}
			return nil
		}},
	{Env: "AUDITD_EGRESS_ALLOW", Scope: Serve,
		Meaning: "comma-separated CIDR prefixes log streams may connect to although they are not public internet addresses, e.g. `10.1.2.0/24` for a SIEM on the private network. Everything else private, loopback, link-local or metadata is refused when dialed, and plain `http` URLs are accepted only to these",
		set: func(c *Config, v string) error {
			p, err := egress.ParseAllowList(v)
			if err != nil {
				return err
			}
			c.EgressAllow = p
			return nil
		}},
	{Env: "AUDITD_LOG_STREAM_PAUSE_AFTER", Default: fmtDur(DefaultLogStreamPauseAfter), Scope: Serve,
		Meaning: "pause a log stream (status `PAUSED`, paused by `AUDITD`, recorded as `AUDIT_LOG_STREAM_PAUSED`) that has failed without a success for this long; `0` never. It keeps its position and resumes where it stopped",
		set:     period(func(c *Config) *time.Duration { return &c.LogStreamPauseAfter })},
	{Flag: "nats-listen", Env: "AUDITD_NATS_LISTEN", Scope: Serve,
		Meaning: "embedded NATS only: `host:port` of a listener for NATS ingest clients. Empty opens none",
		set:     str(func(c *Config) *string { return &c.NATSListen })},
	{Flag: "nats-ingest-user", Env: "AUDITD_NATS_INGEST_USER", Scope: Serve,
		Meaning: "embedded NATS only: the one user that listener admits; required with `--nats-listen`",
		set:     str(func(c *Config) *string { return &c.NATSIngestUser })},
	{Env: "AUDITD_NATS_INGEST_PASSWORD", Secret: true, Scope: Serve,
		Meaning: "that user's password; required with `--nats-listen`",
		set:     str(func(c *Config) *string { return &c.NATSIngestPassword })},
}

// flagValue is a setting as a flag.Value: the flag package names the flag
// in its errors.
type flagValue struct {
	s *Setting
	c *Config
}

func (f flagValue) String() string { return "" }
func (f flagValue) IsBoolFlag() bool {
	return f.s.Bool
}
func (f flagValue) Set(v string) error {
	if err := f.s.set(f.c, v); err != nil {
		return err
	}
	f.c.sources[f.s.Name()] = "flag"
	f.c.text[f.s.Name()] = v
	return nil
}

// usage is a flag's help: its meaning without Markdown, and its variable.
func (s *Setting) usage() string {
	u := strings.NewReplacer("`", "").Replace(s.Meaning)
	for {
		i := strings.Index(u, "](")
		j := strings.Index(u[max(i, 0):], ")")
		k := strings.LastIndex(u[:max(i, 0)], "[")
		if i < 0 || j < 0 || k < 0 {
			break
		}
		u = u[:k] + u[k+1:i] + u[i+j+1:]
	}
	if s.Env != "" {
		u += " (" + s.Env + ")"
	}
	return u
}

// Load reads the settings of scope (Shared, or Shared and Serve) from the
// environment (lookup, usually os.LookupEnv) and then args, registering
// the flags in fs, and checks them: a malformed or out-of-range value, or
// settings that contradict each other, is an error naming them. Defaults
// apply to what is unset.
func Load(scope Scope, fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) (*Config, error) {
	c := &Config{sources: map[string]string{}, text: map[string]string{}}
	getenv := func(name string) string {
		v, _ := lookup(name)
		return v
	}
	for _, s := range Settings {
		if s.Scope > scope {
			continue
		}
		if s.set == nil { // DATABASE_URL_<REGION>
			for _, r := range domain.Regions {
				if u := getenv("DATABASE_URL_" + string(r)); u != "" {
					if c.RegionDatabaseURLs == nil {
						c.RegionDatabaseURLs = map[domain.Region]string{}
					}
					c.RegionDatabaseURLs[r] = u
				}
			}
			continue
		}
		v, src := s.Default, "default"
		if e := getenv(s.Env); s.Env != "" && e != "" {
			v, src = e, "environment"
		}
		if v != "" {
			if err := s.set(c, v); err != nil {
				if src == "environment" {
					if s.Secret {
						return nil, fmt.Errorf("%s: %w", s.Env, err)
					}
					return nil, fmt.Errorf("%s=%q: %w", s.Env, v, err)
				}
				return nil, fmt.Errorf("%s: default %q: %w", s.Name(), v, err)
			}
			c.sources[s.Name()], c.text[s.Name()] = src, v
		}
		if s.Flag != "" {
			fs.Var(flagValue{s, c}, s.Flag, s.usage())
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := c.check(scope); err != nil {
		return nil, err
	}
	return c, nil
}

// check refuses settings that contradict each other.
func (c *Config) check(scope Scope) error {
	for _, r := range domain.Regions {
		ret := domain.Retention{Period: c.Retention[r], Floor: c.RetentionFloor}
		if err := ret.Check(); err != nil {
			return fmt.Errorf("--retention of %s: %w (see --retention-floor)", r, err)
		}
	}
	// Replicas live on distinct servers of a cluster, and the embedded
	// server is a single one.
	switch {
	case c.Streams.Replicas > 1 && c.NATSURL == "":
		return fmt.Errorf("--replicas %d needs a NATS cluster: set NATS_URL to its servers; the embedded NATS server is a single server and holds one replica", c.Streams.Replicas)
	case c.Streams.Placement && c.NATSURL == "":
		return errors.New("--region-placement needs a NATS cluster whose servers are tagged region:<region>: set NATS_URL; the embedded NATS server has no tags")
	}
	if scope < Serve {
		return nil
	}
	if c.NATSListen != "" {
		if c.NATSIngestUser == "" || c.NATSIngestPassword == "" {
			return errors.New("--nats-listen needs AUDITD_NATS_INGEST_USER and AUDITD_NATS_INGEST_PASSWORD")
		}
		c.NATSIngestUsers = []natsx.User{{Name: c.NATSIngestUser, Password: c.NATSIngestPassword}}
	}
	if c.NATSURL != "" && c.NATSResponderCredentials.Empty() {
		return errors.New("NATS_URL needs a responder user for ingest replies: NATS_RESPONDER_USER with NATS_RESPONDER_PASSWORD, or NATS_RESPONDER_CREDS (docs/operations.md#nats-permissions)")
	}
	return nil
}
