package transparency_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/leases"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/transparency"
)

func code(err error) string {
	var e *domain.Error
	if errors.As(err, &e) {
		return string(e.Code)
	}
	return ""
}

// TestGateCountsAnOrganizationAcrossInstances: two instances' gates share
// the leases bucket, so an organization's one integrity check running on
// one refuses its second on the other, while other organizations go on;
// the per-instance total still holds, and a check that ends frees its slot
// for either instance.
func TestGateCountsAnOrganizationAcrossInstances(t *testing.T) {
	js := testenv.JetStream(t, natsx.Streams{DuplicateWindow: time.Minute})
	a := transparency.NewGate(1, 2, leases.New(js, natsx.LeasesBucket, 0))
	b := transparency.NewGate(1, 2, leases.New(js, natsx.LeasesBucket, 0))
	ctx := context.Background()

	type step struct {
		name string
		gate *transparency.Gate
		org  string
		want string // "" admitted, else the refusal's code
	}
	var releases []func()
	run := func(steps []step) {
		t.Helper()
		for _, s := range steps {
			release, err := s.gate.Admit(ctx, s.org)
			if code(err) != s.want || (s.want == "" && err != nil) {
				t.Fatalf("%s: %v, want %q", s.name, err, s.want)
			}
			if release != nil {
				releases = append(releases, release)
			}
		}
	}
	run([]step{
		{"acme on A", a, "acme", ""},
		{"acme again on B", b, "acme", string(domain.CodeRateLimited)},
		{"acme again on A", a, "acme", string(domain.CodeRateLimited)},
		{"globex on B", b, "globex", ""},
		{"initech on A", a, "initech", ""},
		{"a third org on A, past its total", a, "umbrella", string(domain.CodeRateLimited)},
		{"that org on B", b, "umbrella", ""},
	})
	// acme's check ends on A, and globex's on B (B is at its total): B
	// may run acme's.
	releases[0]()
	releases[0]() // a second call is harmless
	run([]step{{"acme on B, full", b, "acme", string(domain.CodeRateLimited)}})
	releases[1]()
	run([]step{{"acme on B after A's ended", b, "acme", ""}})
}

// failingSlots cannot count: NATS is unreachable.
type failingSlots struct{}

func (failingSlots) Acquire(context.Context, string, int) (*leases.Lease, error) {
	return nil, errors.New("nats: no servers available for connection")
}

// TestGateRefusesWhatItCannotCount: without the shared count a check is
// refused UNAVAILABLE, not admitted uncounted, and it holds nothing after.
func TestGateRefusesWhatItCannotCount(t *testing.T) {
	g := transparency.NewGate(1, 1, failingSlots{})
	for range 3 {
		if _, err := g.Admit(context.Background(), "acme"); code(err) != string(domain.CodeUnavailable) {
			t.Fatalf("uncounted check: %v, want UNAVAILABLE", err)
		}
	}
	// Without slots, the instance's own limits alone.
	local := transparency.NewGate(1, 1, nil)
	release, err := local.Admit(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := local.Admit(context.Background(), "globex"); code(err) != string(domain.CodeRateLimited) {
		t.Fatalf("past the total: %v", err)
	}
	release()
	if _, err := local.Admit(context.Background(), "globex"); err != nil {
		t.Fatalf("after release: %v", err)
	}
}
