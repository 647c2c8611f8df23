package natsx

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Layout is where a stream lives: how many replicas it has and which
// servers it may be placed on.
type Layout struct {
	// Replicas is the number of copies; 0 counts as 1.
	Replicas int
	// Tags are the placement tags a server must carry; none places the
	// stream anywhere.
	Tags []string
}

// layoutOf is the layout a stream configuration asks for.
func layoutOf(replicas int, p *jetstream.Placement) Layout {
	l := Layout{Replicas: max(replicas, 1)}
	if p != nil {
		l.Tags = p.Tags
	}
	return l
}

// placement prints l's tags, or "none".
func (l Layout) placement() string {
	if len(l.Tags) == 0 {
		return "none"
	}
	tags := slices.Clone(l.Tags)
	slices.Sort(tags)
	return strings.Join(tags, ",")
}

// String prints l as "replicas 3, placement region:eu".
func (l Layout) String() string {
	return fmt.Sprintf("replicas %d, placement %s", max(l.Replicas, 1), l.placement())
}

// DescribeChange says what differs between an existing stream's layout and
// the wanted one, as "replicas 1 → 3, placement none → region:eu"; "" when
// nothing does. The order of tags does not matter.
func DescribeChange(have, want Layout) string {
	var diffs []string
	if h, w := max(have.Replicas, 1), max(want.Replicas, 1); h != w {
		diffs = append(diffs, fmt.Sprintf("replicas %d → %d", h, w))
	}
	if h, w := have.placement(), want.placement(); h != w {
		diffs = append(diffs, fmt.Sprintf("placement %s → %s", h, w))
	}
	return strings.Join(diffs, ", ")
}

// layoutCheck is what Streams.check learned of one stream before Ensure
// creates or updates it.
type layoutCheck struct {
	kind, name string // "stream", "bucket"; the name the operator knows
	stream     string // the JetStream stream behind it
	have       *Layout
	want       Layout
}

// check looks up the existing stream behind kind name (a stream, or the
// KV_/OBJ_ stream of a bucket) and logs at warn what Ensure is about to
// change in its replicas or placement. A stream that does not exist yet, or
// whose info cannot be read, is left for Ensure to create or report.
func (s Streams) check(ctx context.Context, js jetstream.JetStream, kind, name, stream string, want Layout) *layoutCheck {
	c := &layoutCheck{kind: kind, name: name, stream: stream, want: want}
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return c
	}
	cfg := st.CachedInfo().Config
	have := layoutOf(cfg.Replicas, cfg.Placement)
	c.have = &have
	if d := DescribeChange(have, want); d != "" {
		s.Log.Warn().Str(kind, name).Msgf("%s %s: %s; updating", kind, name, d)
	}
	return c
}

// fail explains err, the server's refusal to create or update the stream.
func (c *layoutCheck) fail(err error) error {
	what := fmt.Sprintf("ensure %s %s", c.kind, c.name)
	switch {
	case c.have == nil:
		what += fmt.Sprintf(" (new, wanted %s)", c.want)
	case DescribeChange(*c.have, c.want) != "":
		what += fmt.Sprintf(" (now %s; wanted %s)", *c.have, c.want)
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
	if unanswered(err) {
		return fmt.Errorf("%s: %w; no better answer from JetStream in %s: check that the NATS cluster has a meta leader and enough servers up (nats server report jetstream)", what, err, EnsurePatience)
	}
	return fmt.Errorf("%s: %w; %s", what, err, c.advice())
}

// advice says what an operator can do when the server refused the layout.
func (c *layoutCheck) advice() string {
	servers := "servers"
	if len(c.want.Tags) > 0 {
		servers = "servers tagged " + c.want.placement()
	}
	return fmt.Sprintf("the cluster needs %d %s with JetStream, up and current: add or tag servers (server_tags), or set AUDITD_REPLICAS lower or AUDITD_REGION_PLACEMENT=false",
		max(c.want.Replicas, 1), servers)
}

// EnsurePatience is how long Ensure keeps asking for one stream or bucket
// that JetStream does not answer for, as a cluster that has just formed, or
// has just lost its meta leader, may not for a few seconds.
const EnsurePatience = 30 * time.Second

// JetStream's error codes for "temporarily unavailable" and "no suitable
// peers for placement".
const (
	jsClusterNotAvailable = 10008
	jsClusterNoPeers      = 10005
)

// patient is a JetStream whose creation of streams and buckets is tried
// again while JetStream gives no answer, for up to EnsurePatience; any
// answer, a refusal included, is returned at once. Creating or updating
// with the same configuration again is harmless.
type patient struct {
	jetstream.JetStream
	log zerolog.Logger
}

func (s Streams) patient(js jetstream.JetStream) jetstream.JetStream {
	return patient{JetStream: js, log: s.Log}
}

func (p patient) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return retry(ctx, p.log, "stream "+cfg.Name, func() (jetstream.Stream, error) {
		return p.JetStream.CreateOrUpdateStream(ctx, cfg)
	})
}

func (p patient) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return retry(ctx, p.log, "bucket "+cfg.Bucket, func() (jetstream.KeyValue, error) {
		return p.JetStream.CreateOrUpdateKeyValue(ctx, cfg)
	})
}

func (p patient) CreateOrUpdateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	return retry(ctx, p.log, "bucket "+cfg.Bucket, func() (jetstream.ObjectStore, error) {
		return p.JetStream.CreateOrUpdateObjectStore(ctx, cfg)
	})
}

// retry calls fn until it returns something but a lack of answer, ctx ends,
// or EnsurePatience has passed.
func retry[T any](ctx context.Context, log zerolog.Logger, what string, fn func() (T, error)) (T, error) {
	deadline := time.Now().Add(EnsurePatience)
	for {
		v, err := fn()
		if err == nil || !unanswered(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return v, err
		}
		log.Warn().Err(err).Msgf("%s: JetStream cannot answer yet; asking again", what)
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// unanswered reports whether err means JetStream gave no answer, or one
// that will change by itself: it is unavailable for now, or a server it
// needs is offline, as one is for a moment while a cluster forms or a node
// restarts. Any other refusal is final.
func unanswered(err error) bool {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		return api.ErrorCode == jsClusterNotAvailable ||
			api.ErrorCode == jsClusterNoPeers && strings.Contains(api.Description, "peer offline")
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders)
}
