package transparency

import (
	"context"
	"sync"

	"github.com/99designs/gqlgen/graphql"

	"github.com/auditlog/auditlog/domain"
)

// Gate admits requests to integrity work: at most perOrg requests
// of one organization and total requests of all at once. Excess is refused
// RATE_LIMITED at once rather than queued, so a flood of checks waits for
// nothing and holds nothing. The fields of one request share its
// admission: a request asking for a checkpoint and a proof counts once.
type Gate struct {
	perOrg, total int

	mu   sync.Mutex
	held map[string]map[any]int // org → request → fields running
	n    int                    // requests admitted
}

// NewGate admits perOrg requests of one organization and total of all at once.
func NewGate(perOrg, total int) *Gate {
	return &Gate{perOrg: perOrg, total: total, held: map[string]map[any]int{}}
}

// admit admits ctx's request for org's integrity work, or refuses it
// RATE_LIMITED; release must be called when the work is done.
func (g *Gate) admit(ctx context.Context, org string) (release func(), err error) {
	var req any = new(int) // outside GraphQL each call is a request
	if graphql.HasOperationContext(ctx) {
		req = graphql.GetOperationContext(ctx)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	reqs := g.held[org]
	if reqs[req] == 0 {
		switch {
		case len(reqs) >= g.perOrg:
			return nil, domain.Errorf(domain.CodeRateLimited, "",
				"the organization already has %d integrity check running (verifyAuditLog, checkpoints, proofs); try again when it is done", g.perOrg)
		case g.n >= g.total:
			return nil, domain.Errorf(domain.CodeRateLimited, "", "integrity checks are busy; try again in a few seconds")
		}
		if reqs == nil {
			reqs = map[any]int{}
			g.held[org] = reqs
		}
		g.n++
	}
	reqs[req]++
	var once sync.Once
	return func() { once.Do(func() { g.release(org, req) }) }, nil
}

func (g *Gate) release(org string, req any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	reqs := g.held[org]
	if reqs[req]--; reqs[req] > 0 {
		return
	}
	delete(reqs, req)
	g.n--
	if len(reqs) == 0 {
		delete(g.held, org)
	}
}
