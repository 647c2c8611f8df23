package httpapi

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestStorageAssess: JetStream storage warns at StorageWarnFraction and is
// a problem at StorageFullFraction; a full persisted query
// bucket only warns; an unknown limit says nothing.
func TestStorageAssess(t *testing.T) {
	tests := []struct {
		name         string
		h            StorageHealth
		problem      string // a substring, "" for none
		warnings     int
		warningMatch string
	}{
		{"plenty of room", StorageHealth{JetStreamUsedBytes: 10, JetStreamLimitBytes: 100}, "", 0, ""},
		{"unknown limit", StorageHealth{JetStreamUsedBytes: 1 << 40}, "", 0, ""},
		{"near the limit", StorageHealth{JetStreamUsedBytes: 91, JetStreamLimitBytes: 100}, "", 1, "91% used"},
		{"full", StorageHealth{JetStreamUsedBytes: 98, JetStreamLimitBytes: 100}, "jetstream storage is full", 0, ""},
		{"bucket full", StorageHealth{JetStreamUsedBytes: 1, JetStreamLimitBytes: 100, PersistedQueriesFull: true,
			PersistedQueryBytes: 60, PersistedQueryMaxBytes: 64}, "", 1, "AUDIT_APQ is full"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			problem, warnings := tc.h.assess()
			if (tc.problem == "") != (problem == "") || !strings.Contains(problem, tc.problem) {
				t.Errorf("problem %q, want one containing %q", problem, tc.problem)
			}
			if len(warnings) != tc.warnings || (tc.warnings > 0 && !strings.Contains(warnings[0], tc.warningMatch)) {
				t.Errorf("warnings %q, want %d containing %q", warnings, tc.warnings, tc.warningMatch)
			}
		})
	}
}

// TestStorageReadingDoesNotQueueProbes: while one caller's reading hangs,
// the others answer at once with the reading before; the very first
// reading is waited for only as long as the caller's ctx allows, and a
// reading cut short is not kept: its caller gets the reading before.
func TestStorageReadingDoesNotQueueProbes(t *testing.T) {
	var c storageReading
	reads := 0
	counted := func() { reads++ }
	full := StorageHealth{JetStreamUsedBytes: 99, JetStreamLimitBytes: 100}
	half := StorageHealth{JetStreamUsedBytes: 50, JetStreamLimitBytes: 100}

	// The first reading: a caller arriving during it waits for it.
	release := make(chan struct{})
	started := make(chan struct{})
	first := make(chan StorageHealth)
	go func() {
		first <- c.get(context.Background(), func(context.Context) StorageHealth {
			close(started)
			<-release
			return full
		}, counted)
	}()
	<-started
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if h := c.get(short, nil, counted); h != (StorageHealth{}) {
		t.Fatalf("no reading yet, a cut-short wait got %+v", h)
	}
	close(release)
	if h := <-first; h != full {
		t.Fatalf("first reading %+v", h)
	}
	if h := c.get(context.Background(), nil, counted); h != full || reads != 1 {
		t.Fatalf("cached reading %+v after %d reads", h, reads)
	}

	// Once stale, one caller reads again; while its reading hangs, another
	// gets the reading before at once instead of queueing.
	c.mu.Lock()
	c.at = time.Now().Add(-storageEvery)
	c.mu.Unlock()
	hang := make(chan struct{})
	reading := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		c.get(context.Background(), func(context.Context) StorageHealth {
			close(reading)
			<-hang
			return half
		}, counted)
	}()
	<-reading
	if h := c.get(context.Background(), nil, counted); h != full {
		t.Fatalf("during a hanging reading: %+v, want the one before", h)
	}
	close(hang)
	<-ended

	// A reading whose caller gave up is not kept.
	c.mu.Lock()
	c.at = time.Now().Add(-storageEvery)
	c.mu.Unlock()
	gone, cancelGone := context.WithCancel(context.Background())
	if h := c.get(gone, func(context.Context) StorageHealth { cancelGone(); return StorageHealth{} }, counted); h != half {
		t.Fatalf("a cut-short reading answered %+v, want the reading before", h)
	}
	if h := c.get(context.Background(), func(context.Context) StorageHealth { return full }, counted); h != full {
		t.Fatalf("after a cut-short reading: %+v", h)
	}
}
