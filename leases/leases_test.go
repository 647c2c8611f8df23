package leases_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/leases"
	"github.com/auditlog/auditlog/natsx"
)

// cluster is a NATS server with the audit buckets declared, which stands-in
// instances reach over their own connections.
type cluster struct {
	t   *testing.T
	url string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	x := testenv.StartExternalNATS(t)
	c := &cluster{t: t, url: x.URL()}
	_, js := c.connect()
	if err := (natsx.Streams{DuplicateWindow: time.Minute}).Ensure(context.Background(), js); err != nil {
		t.Fatal(err)
	}
	return c
}

// connect opens a connection of its own, as another instance would.
func (c *cluster) connect() (*nats.Conn, jetstream.JetStream) {
	c.t.Helper()
	nc, err := nats.Connect(c.url)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	return nc, js
}

// instance is the lease bucket as one instance sees it.
func (c *cluster) instance(ttl time.Duration) *leases.Bucket {
	_, js := c.connect()
	return leases.New(js, natsx.LeasesBucket, ttl)
}

func release(t *testing.T, l *leases.Lease) {
	t.Helper()
	if err := l.Release(context.Background()); err != nil {
		t.Fatalf("release %s: %v", l.Key(), err)
	}
}

// Instances racing for a group's slots, each on its own connection, get
// exactly the limit between them; a release lets the next one in.
func TestAcquireRaceGetsExactlyTheLimit(t *testing.T) {
	c := newCluster(t)
	tests := []struct {
		name             string
		group            string
		instances, limit int
	}{
		{"one slot", "live.one", 6, 1},
		{"three slots", "export.three", 8, 3},
		{"room for all", "live.room", 4, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			buckets := make([]*leases.Bucket, tt.instances)
			for i := range buckets {
				buckets[i] = c.instance(leases.DefaultTTL)
			}
			var (
				mu   sync.Mutex
				held []*leases.Lease
				full int
				wg   sync.WaitGroup
			)
			start := make(chan struct{})
			for _, b := range buckets {
				wg.Go(func() {
					<-start
					l, err := b.Acquire(ctx, tt.group, tt.limit)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						held = append(held, l)
					case errors.Is(err, leases.ErrFull):
						full++
					default:
						t.Errorf("acquire: %v", err)
					}
				})
			}
			close(start)
			wg.Wait()
			want := min(tt.instances, tt.limit)
			if len(held) != want || full != tt.instances-want {
				t.Fatalf("%d held and %d refused, want %d and %d", len(held), full, want, tt.instances-want)
			}
			keys := map[string]bool{}
			for _, l := range held {
				keys[l.Key()] = true
			}
			if len(keys) != want {
				t.Fatalf("two holders share a slot: %v", keys)
			}
			if want < tt.instances {
				// Full now; one release lets exactly one more in.
				release(t, held[0])
				l, err := buckets[0].Acquire(ctx, tt.group, tt.limit)
				if err != nil {
					t.Fatalf("after a release: %v", err)
				}
				held[0] = l
				if _, err := buckets[1].Acquire(ctx, tt.group, tt.limit); !errors.Is(err, leases.ErrFull) {
					t.Fatalf("one release let two in: %v", err)
				}
			}
			for _, l := range held {
				release(t, l)
			}
		})
	}
}

// A holder that keeps refreshing keeps its slot past the TTL; one whose
// instance died (its connection closed) loses it within the TTL, and learns
// so from Lost.
func TestDeadHolderLosesTheLeaseAfterTheTTL(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	nc, js := c.connect()
	dying := leases.New(js, natsx.LeasesBucket, testTTL)
	other := c.instance(testTTL)

	alive, err := other.Acquire(ctx, "live.alive", 1)
	if err != nil {
		t.Fatal(err)
	}
	l, err := dying.Acquire(ctx, "live.dead", 1)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * testTTL)
	if _, err := other.Acquire(ctx, "live.dead", 1); !errors.Is(err, leases.ErrFull) {
		t.Fatalf("a refreshed lease was taken after 3 TTLs: %v", err)
	}
	if _, err := dying.Acquire(ctx, "live.alive", 1); !errors.Is(err, leases.ErrFull) {
		t.Fatalf("a refreshed lease was taken after 3 TTLs: %v", err)
	}

	nc.Close()
	died := time.Now()
	var taken *leases.Lease
	for taken == nil {
		if time.Since(died) > 4*testTTL {
			t.Fatalf("the dead holder's slot is still held %s later", time.Since(died))
		}
		time.Sleep(100 * time.Millisecond)
		taken, err = other.Acquire(ctx, "live.dead", 1)
		if err != nil && !errors.Is(err, leases.ErrFull) {
			t.Fatal(err)
		}
	}
	t.Logf("slot free again %s after its holder died", time.Since(died).Round(10*time.Millisecond))
	select {
	case <-l.Lost():
	case <-time.After(2 * testTTL):
		t.Fatal("the dead holder was not told it lost its lease")
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("releasing a lost lease: %v", err)
	}
	select {
	case <-alive.Lost():
		t.Fatal("a live holder lost its lease")
	default:
	}
	release(t, taken)
	release(t, alive)
}

// Claims have no TTL: a claim stays until freed, and when all are held the
// stale ones (their record is over) are freed for the newcomer.
func TestClaimsLastUntilFreedOrStale(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	a, b := c.instance(testTTL), c.instance(testTTL)
	over := map[string]bool{}
	var mu sync.Mutex
	stale := func(_ context.Context, v string) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return over[v], nil
	}
	for _, job := range []string{"j1", "j2"} {
		if err := a.Claim(ctx, "export.acme", 2, job, stale); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * testTTL) // no refresher, yet still held
	if err := b.Claim(ctx, "export.acme", 2, "j3", stale); !errors.Is(err, leases.ErrFull) {
		t.Fatalf("third claim of two: %v", err)
	}
	mu.Lock()
	over["j1"] = true
	mu.Unlock()
	if err := b.Claim(ctx, "export.acme", 2, "j3", stale); err != nil {
		t.Fatalf("a stale claim was not reclaimed: %v", err)
	}
	if err := b.Claim(ctx, "export.acme", 2, "j4", stale); !errors.Is(err, leases.ErrFull) {
		t.Fatalf("after the reclaim: %v", err)
	}
	if err := a.Free(ctx, "export.acme", "j2"); err != nil {
		t.Fatal(err)
	}
	if err := b.Claim(ctx, "export.acme", 2, "j4", nil); err != nil {
		t.Fatalf("after Free: %v", err)
	}
	// Another group has slots of its own.
	if err := b.Claim(ctx, "export.acme2", 2, "j1", nil); err != nil {
		t.Fatal(err)
	}
}

// The TTL is whole seconds: the shortest the server keeps.
const testTTL = time.Second

func TestBadInputIsRefused(t *testing.T) {
	c := newCluster(t)
	b := c.instance(testTTL)
	ctx := context.Background()
	tests := []struct {
		name  string
		group string
		limit int
	}{
		{"empty group", "", 1},
		{"zero limit", "live.acme", 0},
		{"negative limit", "live.acme", -3},
		{"limit too high", "live.acme", leases.MaxLimit + 1},
		{"star", "live.*", 1},
		{"full wildcard", "live.>", 1},
		{"space", "live.ac me", 1},
		{"empty token", "live..acme", 1},
		{"trailing dot", "live.", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := b.Acquire(ctx, tt.group, tt.limit)
			if err == nil {
				release(t, l)
				t.Fatalf("acquired %s", l.Key())
			}
			if errors.Is(err, leases.ErrFull) {
				t.Fatalf("a bad input reported as full: %v", err)
			}
			if err := b.Claim(ctx, tt.group, tt.limit, "x", nil); err == nil || errors.Is(err, leases.ErrFull) {
				t.Fatalf("claim: %v", err)
			}
		})
	}
	if err := b.Claim(ctx, "export.acme", 1, "", nil); err == nil {
		t.Fatal("a claim without a value was taken")
	}
	if _, err := leases.New(nil, natsx.LeasesBucket, 1500*time.Millisecond).Acquire(ctx, "live.acme", 1); err == nil {
		t.Fatal("a TTL of a fraction of a second was accepted")
	}
}
