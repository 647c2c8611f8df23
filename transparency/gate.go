package transparency

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/leases"
)

// Gate admits requests to integrity work: at most perOrg requests
// of one organization, across every instance, and total requests of all on
// this instance at once. Excess is refused RATE_LIMITED at once rather than
// queued, so a flood of checks waits for nothing and holds nothing. The
// fields of one request share its admission: a request asking for a
// checkpoint and a proof counts once.
type Gate struct {
	perOrg, total int
	slots         Slots

	mu   sync.Mutex
	held map[string]map[any]*admission // org → request → its admission
	n    int                           // requests admitted
}

// Slots counts an organization's integrity checks across instances: in
// auditd the leases bucket every instance shares.
type Slots interface {
	Acquire(ctx context.Context, group string, limit int) (*leases.Lease, error)
}

// admission is one request's admission for an organization, shared by the
// request's fields.
type admission struct {
	fields int
	// ready is closed once the organization's cluster-wide slot is taken
	// (lease) or refused (err).
	ready chan struct{}
	lease *leases.Lease
	err   error
}

// slotWait bounds taking a cluster-wide slot: a NATS that does not answer
// refuses the check rather than holding it.
const slotWait = 2 * time.Second

// NewGate admits perOrg requests of one organization, counted across
// instances in slots (nil: on this instance only), and total of all on this
// instance at once.
func NewGate(perOrg, total int, slots Slots) *Gate {
	return &Gate{perOrg: perOrg, total: total, slots: slots, held: map[string]map[any]*admission{}}
}

// admit admits ctx's request for org's integrity work, or refuses it
// RATE_LIMITED (UNAVAILABLE when the organization's checks cannot be
// counted); release must be called when the work is done.
func (g *Gate) admit(ctx context.Context, org string) (release func(), err error) {
	var req any = new(int) // outside GraphQL each call is a request
	if graphql.HasOperationContext(ctx) {
		req = graphql.GetOperationContext(ctx)
	}
	g.mu.Lock()
	reqs := g.held[org]
	a := reqs[req]
	if a == nil {
		switch {
		case len(reqs) >= g.perOrg:
			g.mu.Unlock()
			return nil, busyOrg(g.perOrg)
		case g.n >= g.total:
			g.mu.Unlock()
			return nil, domain.Errorf(domain.CodeRateLimited, "", "integrity checks are busy; try again in a few seconds")
		}
		if reqs == nil {
			reqs = map[any]*admission{}
			g.held[org] = reqs
		}
		a = &admission{ready: make(chan struct{})}
		reqs[req] = a
		g.n++
		a.fields++
		g.mu.Unlock()
		// Taken outside the lock: a slow NATS delays this request only.
		a.lease, a.err = g.takeSlot(ctx, org)
		close(a.ready)
	} else {
		a.fields++
		g.mu.Unlock()
		<-a.ready
	}
	if a.err != nil {
		g.release(org, req)
		return nil, a.err
	}
	var once sync.Once
	return func() { once.Do(func() { g.release(org, req) }) }, nil
}

// takeSlot takes one of org's cluster-wide slots, if slots are counted.
func (g *Gate) takeSlot(ctx context.Context, org string) (*leases.Lease, error) {
	if g.slots == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, slotWait)
	defer cancel()
	lease, err := g.slots.Acquire(ctx, "integrity."+org, g.perOrg)
	switch {
	case errors.Is(err, leases.ErrFull):
		return nil, busyOrg(g.perOrg)
	case err != nil:
		// Without the shared count the limit cannot be kept: refuse rather
		// than admit without one.
		return nil, domain.Unavailable("integrity checks cannot be counted just now; try again", err)
	}
	return lease, nil
}

func busyOrg(perOrg int) error {
	return domain.Errorf(domain.CodeRateLimited, "",
		"the organization already has %d integrity check running (verifyAuditLog, checkpoints, proofs); try again when it is done", perOrg)
}

func (g *Gate) release(org string, req any) {
	g.mu.Lock()
	reqs := g.held[org]
	a := reqs[req]
	if a.fields--; a.fields > 0 {
		g.mu.Unlock()
		return
	}
	delete(reqs, req)
	g.n--
	if len(reqs) == 0 {
		delete(g.held, org)
	}
	g.mu.Unlock()
	if a.lease != nil {
		// One that cannot be given back now expires with its TTL.
		ctx, cancel := context.WithTimeout(context.Background(), slotWait)
		defer cancel()
		_ = a.lease.Release(ctx)
	}
}
