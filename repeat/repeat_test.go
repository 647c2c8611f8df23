package repeat

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Backoff retries a failing call with doubling waits capped at the limit,
// and stops at the first success.
func TestBackoffDoublesToTheLimitAndStopsOnSuccess(t *testing.T) {
	var waits []time.Duration
	calls := 0
	err := Backoff(context.Background(), time.Millisecond, 4*time.Millisecond, func() error {
		calls++
		if calls < 5 {
			return errors.New("not yet")
		}
		return nil
	}, func(err error, wait time.Duration) { waits = append(waits, wait) })
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond}
	if calls != 5 || len(waits) != len(want) {
		t.Fatalf("calls %d, waits %v; want 5 calls and waits %v", calls, waits, want)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
}

// A cancelled context ends Backoff during its wait, with the context's error.
func TestBackoffEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Backoff(ctx, time.Hour, time.Hour, func() error { return errors.New("down") },
			func(error, time.Duration) { cancel() })
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Backoff did not end with its context")
	}
}

// Every calls its function on each tick and returns when the context ends.
func TestEveryTicksUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		Every(ctx, time.Millisecond, func() {
			calls++
			if calls == 3 {
				cancel()
			}
		})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Every did not end with its context")
	}
	if calls != 3 {
		t.Fatalf("calls %d after cancelling at the third", calls)
	}
}
