package reads

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/ingest"
)

// recorder keeps what it was asked to record, de-duplicating ids as the
// stream does; the server tests record through the real ingest path.
type recorder struct {
	mu     sync.Mutex
	events []*domain.Event
	ids    map[string]bool
	err    error
}

func (r *recorder) RecordOwn(_ context.Context, e *domain.Event) (ingest.Status, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return "", r.err
	}
	if r.ids == nil {
		r.ids = map[string]bool{}
	}
	if r.ids[e.ID] {
		return ingest.Duplicate, nil
	}
	r.ids[e.ID] = true
	r.events = append(r.events, e)
	return ingest.Recorded, nil
}

func (r *recorder) recorded() []*domain.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*domain.Event(nil), r.events...)
}

type viewDetails struct {
	Action   string
	Filter   string
	EventID  string
	ExportID string
	Count    int
	Distinct int
	Reads    []string
}

func detailsOf(t *testing.T, e *domain.Event) viewDetails {
	t.Helper()
	var d viewDetails
	if err := json.Unmarshal(e.Details, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// total adds up the counts of the events of action.
func total(t *testing.T, events []*domain.Event, action string) int {
	n := 0
	for _, e := range events {
		if d := detailsOf(t, e); d.Action == action {
			n += d.Count
		}
	}
	return n
}

type settableClock struct {
	mu sync.Mutex
	at time.Time
}

func (c *settableClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.at }
func (c *settableClock) add(d time.Duration) { c.mu.Lock(); c.at = c.at.Add(d); c.mu.Unlock() }

func TestReadsCoalescePerReaderKindAndWindow(t *testing.T) {
	clk := &settableClock{at: time.Date(2026, 11, 26, 10, 1, 0, 0, time.UTC)}
	rec := &recorder{}
	l := New(rec, clk.now, 10*time.Minute, zerolog.Nop())
	ada := domain.Actor{Kind: domain.ActorUser, ID: "user:ada", Name: "Ada"}
	ctx := WithClient(context.Background(), "127.0.0.1:5555", "curl/8", "req-1")
	grace := Read{Action: Search, Filter: &domain.Filter{Search: "grace"}}
	alan := Read{Action: Search, Filter: &domain.Filter{Search: "alan"}}

	for _, r := range []Read{grace, grace, alan, grace, alan} {
		if err := l.Record(ctx, "acme", ada, r); err != nil {
			t.Fatal(err)
		}
	}
	got := rec.recorded()
	if len(got) != 1 {
		t.Fatalf("%d events before the window ended, want the first read's alone", len(got))
	}
	e := got[0]
	if e.Type != domain.TypeAuditLogViewed || e.IPAddress != "127.0.0.1" || e.UserAgent != "curl/8" || e.RequestID != "req-1" ||
		string(e.Details) != `{"action":"search","count":1,"filter":"{\"search\":\"grace\"}"}` {
		t.Fatalf("event %+v details %s", e, e.Details)
	}
	if err := e.Validate(clk.now()); err != nil {
		t.Fatalf("the read event does not validate: %v", err)
	}

	// Within the window nothing more is recorded.
	l.Flush(ctx, false)
	if n := len(rec.recorded()); n != 1 {
		t.Fatalf("%d events before the window ended", n)
	}
	// When it ends, one event counts the four other reads.
	clk.add(10 * time.Minute)
	l.Flush(ctx, false)
	got = rec.recorded()
	if len(got) != 2 {
		t.Fatalf("%d events after the window, want 2", len(got))
	}
	d := detailsOf(t, got[1])
	if d.Action != Search || d.Count != 4 || d.Distinct != 2 || len(d.Reads) != 2 ||
		d.Reads[0] != `{"search":"grace"}` || d.Reads[1] != `{"search":"alan"}` {
		t.Fatalf("follow-up details %s", got[1].Details)
	}
	if err := got[1].Validate(clk.now()); err != nil {
		t.Fatalf("the follow-up does not validate: %v", err)
	}
	if got[1].ID == got[0].ID {
		t.Fatal("the follow-up reuses the first event's id")
	}

	// Another kind, another reader, another org, the next window: a first
	// event each, at once.
	_ = l.Record(ctx, "acme", ada, Read{Action: View, EventID: "01JDQ8Z6V1K9E3M4N5P6Q7R8S9"})
	_ = l.Record(ctx, "acme", domain.Actor{Kind: domain.ActorUser, ID: "user:bob"}, grace)
	_ = l.Record(ctx, "globex", ada, grace)
	_ = l.Record(ctx, "acme", ada, grace)
	if n := len(rec.recorded()); n != 6 {
		t.Fatalf("%d events, want 6", n)
	}
}

// A burst of concurrent reads (aliases of one request) makes one event at
// once and one with the count; every read is counted.
func TestABurstOfReadsIsOneEventAndOneCount(t *testing.T) {
	rec := &recorder{}
	clk := &settableClock{at: time.Date(2026, 11, 26, 10, 1, 0, 0, time.UTC)}
	l := New(rec, clk.now, time.Minute, zerolog.Nop())
	ada := domain.Actor{Kind: domain.ActorUser, ID: "user:ada"}
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			f := &domain.Filter{Search: string(rune('a' + i%26))}
			if err := l.Record(context.Background(), "acme", ada, Read{Action: Search, Filter: f}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := len(rec.recorded()); n != 1 {
		t.Fatalf("%d events for a burst, want 1 before the window ends", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	cancel() // a stop records what was counted
	<-done
	got := rec.recorded()
	if len(got) != 2 || total(t, got, Search) != 100 {
		t.Fatalf("%d events counting %d reads, want 2 counting 100", len(got), total(t, got, Search))
	}
	if d := detailsOf(t, got[1]); d.Distinct != 26 || len(d.Reads) != MaxListed {
		t.Fatalf("follow-up lists %d of %d distinct reads", len(d.Reads), d.Distinct)
	}
}

// Fifty uses of one download link count fifty.
func TestEachDownloadIsCounted(t *testing.T) {
	rec := &recorder{}
	l := New(rec, time.Now, time.Hour, zerolog.Nop())
	link := domain.Actor{Kind: domain.ActorSystem, ID: "download-link:01JDQ8Z6V1K9E3M4N5P6Q7R8S9"}
	for range 50 {
		if err := l.Record(context.Background(), "acme", link, Read{Action: Download, ExportID: "01JDQ8Z6V1K9E3M4N5P6Q7R8S9"}); err != nil {
			t.Fatal(err)
		}
	}
	l.Flush(context.Background(), true)
	if got := rec.recorded(); len(got) != 2 || total(t, got, Download) != 50 {
		t.Fatalf("%d events counting %d downloads, want 2 counting 50", len(got), total(t, got, Download))
	}
}

func TestAReadThatCannotBeRecordedIsRefused(t *testing.T) {
	rec := &recorder{err: errors.New("nats: no responders")}
	l := New(rec, time.Now, 0, zerolog.Nop())
	u := domain.Actor{Kind: domain.ActorUser, ID: "u"}
	for range 2 { // the second read tries again, and is refused too
		if err := l.Record(context.Background(), "acme", u, Read{Action: Search}); domain.CodeOf(err) != domain.CodeUnavailable {
			t.Fatalf("got %v, want UNAVAILABLE", err)
		}
	}
	rec.mu.Lock()
	rec.err = nil
	rec.mu.Unlock()
	if err := l.Record(context.Background(), "acme", u, Read{Action: Search}); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.recorded()); n != 1 {
		t.Fatalf("%d events once NATS answers, want 1", n)
	}
}

// A follow-up that cannot be recorded is kept and recorded later.
func TestACountThatCannotBeRecordedIsKept(t *testing.T) {
	rec := &recorder{}
	clk := &settableClock{at: time.Date(2026, 11, 26, 10, 1, 0, 0, time.UTC)}
	l := New(rec, clk.now, time.Minute, zerolog.Nop())
	u := domain.Actor{Kind: domain.ActorUser, ID: "u"}
	for range 3 {
		if err := l.Record(context.Background(), "acme", u, Read{Action: Search}); err != nil {
			t.Fatal(err)
		}
	}
	rec.mu.Lock()
	rec.err = errors.New("nats: timeout")
	rec.mu.Unlock()
	clk.add(time.Minute)
	l.Flush(context.Background(), false)
	rec.mu.Lock()
	rec.err = nil
	rec.mu.Unlock()
	l.Flush(context.Background(), false)
	if got := rec.recorded(); len(got) != 2 || total(t, got, Search) != 3 {
		t.Fatalf("%d events counting %d reads, want 2 counting 3", len(got), total(t, got, Search))
	}
}

func TestClientFactsAnEventCannotHoldAreLeftOut(t *testing.T) {
	c := clientOf(WithClient(context.Background(), "not-an-address", "agent\x00", "id\xff"))
	if c.ip != "" || c.userAgent != "" || c.requestID != "" {
		t.Fatalf("%+v", c)
	}
}
