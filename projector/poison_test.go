package projector_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/projtest"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/projector"
)

// Whatever reaches a stream, one message must not stop a region: each bad
// message is quarantined with its bytes and reason, every other one applied.
func TestProjectorQuarantinesWhatItCannotApply(t *testing.T) {
	js, store, newProjector := projtest.NewStore(t)
	ctx := context.Background()
	poison := map[string]func() (string, []byte){
		"not JSON": func() (string, []byte) { return "audit.us.acme.PLATFORM.USER_LOGOUT", []byte("\x00\xff{not json") },
		"NUL in actor name": func() (string, []byte) {
			return projtest.RawEvent("acme", func(e map[string]any) { e["actor"] = map[string]any{"kind": "USER", "id": "u1", "name": "nul\x00name"} })
		},
		"NUL in details": func() (string, []byte) {
			return projtest.RawEvent("acme", func(e map[string]any) { e["details"] = map[string]any{"userId": "u\x00"} })
		},
		"NUL in user agent": func() (string, []byte) {
			return projtest.RawEvent("acme", func(e map[string]any) { e["userAgent"] = "x\x00" })
		},
		"invalid UTF-8 in details": func() (string, []byte) {
			subj, data := projtest.RawEvent("acme", func(e map[string]any) { e["details"] = map[string]any{"userId": "u-MARK"} })
			return subj, bytes.Replace(data, []byte("MARK"), []byte("\xff\xfe"), 1)
		},
		"another org's event on this org's subject": func() (string, []byte) {
			_, data := projtest.RawEvent("victim", nil)
			return "audit.us.acme.PLATFORM.USER_LOGOUT", data
		},
	}
	good := 0
	bad := map[uint64]string{}
	publish := func(subject string, data []byte) uint64 {
		ack, err := js.Publish(ctx, subject, data)
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	for name, make := range poison {
		for range 7 {
			publish(projtest.RawEvent("acme", nil))
			good++
		}
		bad[publish(make())] = name
	}
	last := publish(projtest.RawEvent("other", nil))
	good++

	p := newProjector(100)
	projtest.RunUntil(t, p, last)

	var rows int
	if err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM audit_us.events`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != good {
		t.Fatalf("read model holds %d events, want the %d good ones", rows, good)
	}
	q, err := store.Quarantined(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != len(bad) || p.Quarantined() != uint64(len(bad)) {
		t.Fatalf("quarantined %d (counted %d), want %d: %+v", len(q), p.Quarantined(), len(bad), q)
	}
	for _, m := range q {
		if _, ok := bad[m.Seq]; !ok || len(m.Data) == 0 || m.Error == "" || m.Subject == "" {
			t.Errorf("quarantined %d (%s): %+v", m.Seq, bad[m.Seq], m)
		}
	}
	if cp, _ := store.Position(ctx); cp != last {
		t.Fatalf("checkpoint %d, want %d", cp, last)
	}
}

// Deliveries lost on the way (a reconnect, an overrun client) must never be
// acked over: the projector notices that the stream holds what it was not
// given and resumes from its checkpoint.
func TestProjectorResyncsAfterLostDeliveries(t *testing.T) {
	js, store, newProjector := projtest.NewStore(t)
	ctx := context.Background()
	last := projtest.Publish(t, js, "acme", 3000)

	var mu sync.Mutex
	lost := map[uint64]bool{}
	p := newProjector(200)
	projector.LoseDeliveries(p, func(seq uint64) bool {
		mu.Lock()
		defer mu.Unlock()
		// The first delivery of a run of messages in the middle of a batch,
		// of a whole batch, and of the very last messages is lost once.
		if (seq >= 150 && seq < 175) || (seq >= 1201 && seq <= 1400) || (seq > last-3 && seq <= last) {
			if !lost[seq] {
				lost[seq] = true
				return true
			}
		}
		return false
	})
	// A lost tail shows when deliveries pause while the stream holds more.
	p.IdleCheck = 200 * time.Millisecond
	projtest.RunUntil(t, p, last)
	projtest.Publish(t, js, "acme", 1)
	projtest.RunUntil(t, p, last+1)

	var rows, distinct int
	if err := store.Pool().QueryRow(ctx, `SELECT count(*), count(DISTINCT stream_seq) FROM audit_us.events`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != 3001 || distinct != 3001 {
		t.Fatalf("read model holds %d rows (%d sequences), want 3001", rows, distinct)
	}
	if p.Resyncs() < 2 {
		t.Fatalf("resynced %d times, want at least 2", p.Resyncs())
	}
}

// Sequences the stream no longer holds are a real hole, not a lost delivery.
func TestProjectorPassesRealHoles(t *testing.T) {
	js, store, newProjector := projtest.NewStore(t)
	ctx := context.Background()
	s, err := js.Stream(ctx, natsx.AuditStream(domain.RegionUS))
	if err != nil {
		t.Fatal(err)
	}
	// Audit streams deny deletes; make one that allows them, as an older
	// deployment's (or a stream with a maximum age) would have holes.
	cfg := s.CachedInfo().Config
	cfg.DenyDelete = false
	if err := js.DeleteStream(ctx, cfg.Name); err != nil {
		t.Fatal(err)
	}
	if s, err = js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	last := projtest.Publish(t, js, "acme", 500)
	for seq := uint64(100); seq < 120; seq++ {
		if err := s.DeleteMsg(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteMsg(ctx, 1); err != nil {
		t.Fatal(err)
	}
	p := newProjector(50)
	projtest.RunUntil(t, p, last)
	var rows int
	if err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM audit_us.events`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 479 || p.Resyncs() != 0 {
		t.Fatalf("%d rows and %d resyncs, want 479 and 0", rows, p.Resyncs())
	}
}
