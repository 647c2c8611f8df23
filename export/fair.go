package export

import (
	"context"
	"sync"
)

// turnRows is how many rows a run writes per turn before it lets the job of
// a less recently served organization go first: small enough that a short
// export waits a few milliseconds behind a long one, large enough that the
// handover costs nothing measurable.
const turnRows = 2048

// fairShare shares an instance's exports among organizations. It admits at
// most maxRunning runs (each holds a Postgres snapshot, so a connection),
// at most perOrg of one organization, so one organization never fills the
// instance; and it hands out turns, each turnRows rows long, to at most
// turns runs at once. Whenever a run or a turn is free, it goes to the
// waiting organization served least recently, so a small export started
// behind another organization's million rows runs after one turn of it,
// not after all of it.
type fairShare struct {
	mu         sync.Mutex
	maxRunning int
	perOrg     int
	freeTurns  int
	running    map[string]int    // runs admitted, by organization
	total      int               // sum of running
	served     map[string]uint64 // the tick of each organization's last grant
	tick       uint64
	admitQ     []*fairWaiter
	turnQ      []*fairWaiter
}

// fairWaiter is a run waiting to be admitted or for a turn.
type fairWaiter struct {
	org   string
	ready chan struct{}
}

// newFairShare shares turns turns among at most maxRunning runs, at most
// perOrg of one organization.
func newFairShare(turns, maxRunning, perOrg int) *fairShare {
	return &fairShare{
		maxRunning: maxRunning, perOrg: perOrg, freeTurns: turns,
		running: map[string]int{}, served: map[string]uint64{},
	}
}

// admit waits until org may start a run. The caller calls leave when the
// run is over.
func (f *fairShare) admit(ctx context.Context, org string) error {
	return f.wait(ctx, &f.admitQ, org, func() {
		// Given back by a run that gave up just after being admitted.
		f.mu.Lock()
		f.leaveLocked(org)
		f.mu.Unlock()
	})
}

// leave ends a run of org that admit let in.
func (f *fairShare) leave(org string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leaveLocked(org)
}

func (f *fairShare) leaveLocked(org string) {
	f.total--
	if f.running[org]--; f.running[org] <= 0 {
		delete(f.running, org)
		delete(f.served, org) // an organization that comes back starts afresh
	}
	f.dispatch()
}

// turn waits until org's run may write its next turnRows rows; the caller
// calls endTurn after them.
func (f *fairShare) turn(ctx context.Context, org string) error {
	return f.wait(ctx, &f.turnQ, org, f.endTurn)
}

// endTurn gives a turn back.
func (f *fairShare) endTurn() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.freeTurns++
	f.dispatch()
}

// wait queues a waiter of org on q and waits for its grant; undo gives back
// a grant that came as ctx ended.
func (f *fairShare) wait(ctx context.Context, q *[]*fairWaiter, org string, undo func()) error {
	w := &fairWaiter{org: org, ready: make(chan struct{})}
	f.mu.Lock()
	*q = append(*q, w)
	f.dispatch()
	f.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	f.mu.Lock()
	for i, x := range *q {
		if x == w {
			*q = append((*q)[:i], (*q)[i+1:]...)
			f.mu.Unlock()
			return ctx.Err()
		}
	}
	f.mu.Unlock()
	undo() // granted meanwhile
	return ctx.Err()
}

// dispatch grants what is free to the least recently served waiters.
func (f *fairShare) dispatch() {
	for f.total < f.maxRunning {
		i := f.pick(f.admitQ, func(org string) bool { return f.running[org] < f.perOrg })
		if i < 0 {
			break
		}
		w := f.admitQ[i]
		f.admitQ = append(f.admitQ[:i], f.admitQ[i+1:]...)
		f.total++
		f.running[w.org]++
		f.grant(w)
	}
	for f.freeTurns > 0 {
		i := f.pick(f.turnQ, func(string) bool { return true })
		if i < 0 {
			break
		}
		w := f.turnQ[i]
		f.turnQ = append(f.turnQ[:i], f.turnQ[i+1:]...)
		f.freeTurns--
		f.grant(w)
	}
}

// pick is the index of the eligible waiter whose organization was served
// least recently (the earliest queued among equals), or -1.
func (f *fairShare) pick(q []*fairWaiter, eligible func(org string) bool) int {
	best := -1
	for i, w := range q {
		if !eligible(w.org) {
			continue
		}
		if best < 0 || f.served[w.org] < f.served[q[best].org] {
			best = i
		}
	}
	return best
}

func (f *fairShare) grant(w *fairWaiter) {
	f.tick++
	f.served[w.org] = f.tick
	close(w.ready)
}
