package reads

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/ingest"
)

// recorder keeps what it was asked to record; the server tests record
// through the real ingest path.
type recorder struct {
	events []*domain.Event
	err    error
}

func (r *recorder) RecordOwn(_ context.Context, e *domain.Event) (ingest.Status, error) {
	if r.err != nil {
		return "", r.err
	}
	r.events = append(r.events, e)
	return ingest.Recorded, nil
}

func TestOneEventPerReaderReadAndWindow(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 1, 0, 0, time.UTC)
	rec := &recorder{}
	l := New(rec, func() time.Time { return now }, 10*time.Minute)
	ada := domain.Actor{Kind: domain.ActorUser, ID: "user:ada", Name: "Ada"}
	ctx := WithClient(context.Background(), "127.0.0.1:5555", "curl/8", "req-1")
	search := Read{Action: Search, Filter: &domain.Filter{Search: "grace"}}

	for range 3 {
		if err := l.Record(ctx, "acme", ada, search); err != nil {
			t.Fatal(err)
		}
	}
	if len(rec.events) != 1 {
		t.Fatalf("%d events for one read repeated in its window", len(rec.events))
	}
	e := rec.events[0]
	if e.Type != domain.TypeAuditLogViewed || e.IPAddress != "127.0.0.1" || e.UserAgent != "curl/8" || e.RequestID != "req-1" ||
		string(e.Details) != `{"action":"search","filter":"{\"search\":\"grace\"}"}` {
		t.Fatalf("event %+v details %s", e, e.Details)
	}
	if err := e.Validate(now); err != nil {
		t.Fatalf("the read event does not validate: %v", err)
	}

	// Another read, another reader, another org, or the next window: new events.
	_ = l.Record(ctx, "acme", ada, Read{Action: View, EventID: "01JDQ8Z6V1K9E3M4N5P6Q7R8S9"})
	_ = l.Record(ctx, "acme", domain.Actor{Kind: domain.ActorUser, ID: "user:bob"}, search)
	_ = l.Record(ctx, "globex", ada, search)
	now = now.Add(10 * time.Minute)
	_ = l.Record(ctx, "acme", ada, search)
	if len(rec.events) != 5 {
		t.Fatalf("%d events, want 5", len(rec.events))
	}
	seen := map[string]bool{}
	for _, e := range rec.events {
		if seen[e.ID] {
			t.Fatalf("id %s used twice", e.ID)
		}
		seen[e.ID] = true
	}
}

func TestAReadThatCannotBeRecordedIsRefused(t *testing.T) {
	l := New(&recorder{err: errors.New("nats: no responders")}, time.Now, 0)
	err := l.Record(context.Background(), "acme", domain.Actor{Kind: domain.ActorUser, ID: "u"}, Read{Action: Search})
	if domain.CodeOf(err) != domain.CodeUnavailable {
		t.Fatalf("got %v, want UNAVAILABLE", err)
	}
}

func TestClientFactsAnEventCannotHoldAreLeftOut(t *testing.T) {
	c := clientOf(WithClient(context.Background(), "not-an-address", "agent\x00", "id\xff"))
	if c.ip != "" || c.userAgent != "" || c.requestID != "" {
		t.Fatalf("%+v", c)
	}
}
