package delivery_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/logstream/delivery"
	"github.com/auditlog/auditlog/logstream/streamstore"
	"github.com/auditlog/auditlog/natsx"
)

// removeAll is retention: it shortens the region's stream's MaxAge until
// every message it holds now has expired, then sets it back.
func (e *env) removeAll(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	st, err := e.js.Stream(ctx, natsx.AuditStream(region))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short := info.Config
	short.MaxAge, short.Duplicates = time.Second, time.Second
	if _, err := e.js.UpdateStream(ctx, short); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "retention to remove every message", 10*time.Second, func() bool {
		now, err := st.Info(ctx)
		return err == nil && now.State.FirstSeq > info.State.LastSeq
	})
	if _, err := e.js.UpdateStream(ctx, info.Config); err != nil {
		t.Fatal(err)
	}
}

// skippedMetric is auditlog_log_stream_skipped_events_total for stream id.
func (e *env) skippedMetric(t *testing.T, id string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(delivery.NewCollector(e.store))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "auditlog_log_stream_skipped_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "stream_id" && l.GetValue() == id {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no skipped metric for stream %s", id)
	return 0
}

// TestRetentionGapIsCounted: events retention removes before a stream
// delivered them (it failed, or was paused, for longer than the region
// keeps events) are not passed over silently: the stream counts them in
// skipped (and the metric), says when and up to when, and delivers what
// it still had in memory and everything after, in order.
func TestRetentionGapIsCounted(t *testing.T) {
	cases := []struct {
		name string
		// outage makes the stream stop delivering, and returns what
		// brings it back.
		outage func(t *testing.T, e *env, r *receiver, s *delivery.View, stop func()) (restore func())
	}{
		{"failing longer than retention", func(t *testing.T, e *env, r *receiver, s *delivery.View, _ func()) func() {
			r.set(func(int) int { return http.StatusServiceUnavailable })
			return func() { r.set(func(int) int { return http.StatusOK }) }
		}},
		{"paused longer than retention", func(t *testing.T, e *env, r *receiver, s *delivery.View, stop func()) func() {
			admin := &domain.Principal{OrgID: s.OrgID}
			if _, err := e.svc.Pause(context.Background(), admin, s.ID); err != nil {
				t.Fatal(err)
			}
			stop() // the paused stream's deliverer is gone with its engine
			return func() {
				if _, err := e.svc.Resume(context.Background(), admin, s.ID); err != nil {
					t.Fatal(err)
				}
				e.engine(t, delivery.Config{MaxEvents: 5})
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := newReceiver(t)
			org := "org-" + testenv.RandomHex(4)
			s := e.createWebhook(t, org, r.url(), nil)
			stop := e.engine(t, delivery.Config{MaxEvents: 5})
			before := e.publish(t, org, 5, "USER_CREATED")
			waitFor(t, "the first events", 10*time.Second, func() bool { return e.state(t, org, s.ID).Delivered >= 5 })

			restore := tc.outage(t, e, r, s, stop)
			lost := e.publish(t, org, 30, "USER_CREATED")
			if tc.name == "failing longer than retention" {
				waitFor(t, "ERROR", 10*time.Second, func() bool { return e.state(t, org, s.ID).Status == streamstore.Error })
			}
			removedAt := time.Now()
			e.removeAll(t)
			restore()
			after := e.publish(t, org, 10, "USER_CREATED")
			waitFor(t, "the events after the gap", 10*time.Second, func() bool {
				got := r.received()
				return len(got) > 0 && got[len(got)-1] == after[len(after)-1]
			})

			// What arrived is what came before, those of the lost it
			// still held in memory, and what came after, in order.
			var distinct []string
			for _, id := range r.received() {
				if !slices.Contains(distinct, id) {
					distinct = append(distinct, id)
				}
			}
			kept := len(distinct) - len(before) - len(after)
			want := slices.Concat(before, lost[:max(kept, 0)], after)
			if !slices.Equal(distinct, want) {
				t.Fatalf("received %d distinct events, not the first %d, %d of the lost and the last %d in order", len(distinct), len(before), kept, len(after))
			}
			st := e.state(t, org, s.ID)
			if st.Skipped != int64(len(lost)-kept) {
				t.Fatalf("skipped %d, want %d: %d lost, %d of them delivered from memory", st.Skipped, len(lost)-kept, len(lost), kept)
			}
			if st.LastSkippedAt == nil || st.SkippedBefore == nil || st.SkippedBefore.Before(removedAt.Add(-time.Second)) {
				t.Fatalf("lastSkippedAt %v, skippedBefore %v (removed at %v)", st.LastSkippedAt, st.SkippedBefore, removedAt)
			}
			if got := e.skippedMetric(t, s.ID); got != float64(st.Skipped) {
				t.Fatalf("metric %v, row %d", got, st.Skipped)
			}
		})
	}
}

// TestSkipCountsAGapOnce: a gap found again, by the same deliverer or the
// next one, or one behind the stream's position, adds nothing.
func TestSkipCountsAGapOnce(t *testing.T) {
	e := newEnv(t)
	s := e.createWebhook(t, "org-"+testenv.RandomHex(4), "http://127.0.0.1:9/hook", nil)
	ctx := context.Background()
	now := time.Now()
	if _, _, err := e.store.Record(ctx, s.ID, s.Version, streamstore.Progress{Position: 10}, now); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name          string
		from, through uint64
		added, total  int64
	}{
		{"a gap after the position", 12, 20, 8, 8},
		{"the same gap again", 12, 20, 0, 8},
		{"the same gap seen from the position", 10, 20, 0, 8},
		{"a wider gap", 12, 25, 5, 13},
		{"a gap behind what was counted", 10, 15, 0, 13},
		{"nothing gone", 30, 30, 0, 13},
	}
	for _, st := range steps {
		added, err := e.store.Skip(ctx, s.ID, streamstore.Gone{From: st.from, Through: st.through, Before: now}, now)
		if err != nil {
			t.Fatal(err)
		}
		got := e.state(t, s.OrgID, s.ID)
		if added != st.added || got.Skipped != st.total {
			t.Fatalf("%s: added %d (total %d), want %d (total %d)", st.name, added, got.Skipped, st.added, st.total)
		}
	}
}
