package ingest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultOrgShare is how many of one organization's appends may await
// JetStream's acknowledgement at once: half the publish window of 16,384
// auditd's connection allows, so an organization's flood fills at most half
// of it and every other organization still finds room.
const DefaultOrgShare = 8192

// maxSettle bounds how long a call's share waits for JetStream to settle
// the appends the call left unanswered; JetStream fails an unacknowledged
// asynchronous append well before (auditd's publish ack wait).
const maxSettle = time.Minute

// errShareFull says an organization's appends filled its share of the
// publish window for as long as the call could wait.
var errShareFull = errors.New("the organization's share of the publish window is full")

// shares counts each organization's appends in flight: taken by a call
// before it publishes, given back when it has its acknowledgements.
type shares struct {
	limit int

	mu   sync.Mutex
	held map[string]int
	// freed is closed, and replaced, whenever appends are given back.
	freed chan struct{}
}

func newShares(limit int) *shares {
	return &shares{limit: limit, held: map[string]int{}, freed: make(chan struct{})}
}

// take reserves counts (organization → appends) at once, waiting until
// deadline for room. An organization holding nothing may always take, so
// a call larger than a share still goes through alone.
func (s *shares) take(ctx context.Context, counts map[string]int, deadline time.Time) (release func(), err error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		s.mu.Lock()
		fits := true
		for org, n := range counts {
			if h := s.held[org]; h > 0 && h+n > s.limit {
				fits = false
				break
			}
		}
		if fits {
			for org, n := range counts {
				s.held[org] += n
			}
			s.mu.Unlock()
			var once sync.Once
			return func() { once.Do(func() { s.give(counts) }) }, nil
		}
		freed := s.freed
		s.mu.Unlock()
		select {
		case <-freed:
		case <-timer.C:
			return nil, errShareFull
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *shares) give(counts map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for org, n := range counts {
		if s.held[org] -= n; s.held[org] <= 0 {
			delete(s.held, org)
		}
	}
	close(s.freed)
	s.freed = make(chan struct{})
}

// settle calls release once JetStream has settled every append in
// unsettled (acknowledged or failed), or after maxSettle: at once when
// there are none. Its goroutine ends with them.
func settle(unsettled []jetstream.PubAckFuture, release func()) {
	if len(unsettled) == 0 {
		release()
		return
	}
	go func() {
		defer release()
		timeout := time.NewTimer(maxSettle)
		defer timeout.Stop()
		for _, f := range unsettled {
			select {
			case <-f.Ok():
			case <-f.Err():
			case <-timeout.C:
				return
			}
		}
	}()
}
