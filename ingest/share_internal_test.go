package ingest

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestSharesTakeAndGive: an organization takes up to its share; past it a
// call waits until the deadline and is refused, unless the organization
// holds nothing (a call larger than a share goes through alone); giving
// back wakes a waiting call; other organizations take regardless.
func TestSharesTakeAndGive(t *testing.T) {
	s := newShares(3)
	ctx := context.Background()
	soon := func() time.Time { return time.Now().Add(50 * time.Millisecond) }
	tests := []struct {
		name   string
		counts map[string]int
		want   error
	}{
		{"a call larger than the share, holding nothing", map[string]int{"a": 5}, nil},
		{"a again, holding 5", map[string]int{"a": 1}, errShareFull},
		{"another org", map[string]int{"b": 3}, nil},
		{"b past its share", map[string]int{"b": 1}, errShareFull},
		{"a call for both, one full", map[string]int{"b": 1, "c": 1}, errShareFull},
		{"c alone", map[string]int{"c": 2}, nil},
	}
	var releases []func()
	for _, tc := range tests {
		release, err := s.take(ctx, tc.counts, soon())
		if !errors.Is(err, tc.want) {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if release != nil {
			releases = append(releases, release)
		}
	}
	if s.held["c"] != 2 || s.held["b"] != 3 || s.held["a"] != 5 {
		t.Fatalf("held %v: a refused call took nothing", s.held)
	}
	// A waiting call of b goes through once b gives back.
	got := make(chan error, 1)
	go func() {
		_, err := s.take(ctx, map[string]int{"b": 1}, time.Now().Add(5*time.Second))
		got <- err
	}()
	releases[1]()
	releases[1]() // once only
	if err := <-got; err != nil {
		t.Fatalf("after b gave back: %v", err)
	}
	if s.held["b"] != 1 {
		t.Fatalf("b holds %d, want 1", s.held["b"])
	}
}
