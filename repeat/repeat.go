// Package repeat runs work again and again until its context ends: on a
// period, or after failures with capped exponential backoff. The loops of
// the server, the projector runtime and the health watch share it, so each
// stops the same way when its owner cancels.
package repeat

import (
	"context"
	"time"
)

// Every calls fn each period until ctx ends. The first call comes one
// period after the start; callers that want one at once make it first.
func Every(ctx context.Context, period time.Duration, fn func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn()
	}
}

// Backoff calls fn until it returns nil or ctx ends. After each failure it
// tells failed the error and the wait before the next try, which starts at
// first and doubles up to limit. It returns ctx's error if ctx ended first.
func Backoff(ctx context.Context, first, limit time.Duration, fn func() error, failed func(err error, wait time.Duration)) error {
	wait := first
	for {
		err := fn()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			return nil
		}
		failed(err, wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, limit)
	}
}
