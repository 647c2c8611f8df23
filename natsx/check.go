package natsx

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
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
