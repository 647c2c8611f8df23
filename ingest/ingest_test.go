package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/ingest"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
)

// settingsOf answers from a fixed table: which organizations collect, and
// where. Settings are an input of ingest here; their own stream is tested
// with the settings service.
type settingsOf map[string]domain.Settings

func (s settingsOf) Get(_ context.Context, org string) (domain.Settings, error) {
	if org == "broken" {
		return domain.Settings{}, errors.New("settings stream unreachable")
	}
	return s[org], nil
}

// tally counts outcomes as the metrics do.
type tally map[ingest.Status]int

func (t tally) Count(s ingest.Status, n int) { t[s] += n }

func (t tally) Refused(reason string, n int) { t[ingest.Status("refused:"+reason)] += n }

func newRecorder(t *testing.T) (*ingest.Recorder, jetstream.JetStream, tally) {
	t.Helper()
	js := testenv.JetStream(t, natsx.Streams{DuplicateWindow: time.Minute})
	settings := settingsOf{
		"acme":   {OrgID: "acme", Enabled: true, Region: domain.RegionUS},
		"globex": {OrgID: "globex", Enabled: true, Region: domain.RegionEU},
		"off":    {OrgID: "off", Enabled: false, Region: domain.RegionUS},
	}
	counts := tally{}
	return ingest.NewRecorder(js, settings, time.Now, counts), js, counts
}

func service(orgs ...string) *domain.Principal {
	return &domain.Principal{Subject: "service:test", Kind: domain.PrincipalService,
		Sources: []domain.Source{domain.SourcePlatform}, Orgs: orgs}
}

func event(org string, mutate func(*domain.Event)) domain.Event {
	e := domain.Event{
		ID: ulid.Make().String(), OrgID: org, Source: domain.SourcePlatform, Type: "USER_LOGOUT",
		OccurredAt: time.Now().Add(-time.Minute),
		Actor:      domain.Actor{Kind: domain.ActorUser, ID: "u-1", Name: "Ann"},
		Details:    json.RawMessage(`{"userId":"u-1"}`),
	}
	if mutate != nil {
		mutate(&e)
	}
	return e
}

// storedCount is how many messages region's stream holds.
func storedCount(t *testing.T, js jetstream.JetStream, r domain.Region) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), natsx.AuditStream(r))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// Each event of a batch is answered on its own, in order: a bad event
// rejects itself with a code and the field at fault, and only the good
// ones are appended, each to its organization's region.
func TestRecordAnswersEachEvent(t *testing.T) {
	rec, js, counts := newRecorder(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		e      domain.Event
		status ingest.Status
		code   domain.Code
		field  string
	}{
		{"good, region US", event("acme", nil), ingest.Recorded, "", ""},
		{"good, region EU", event("globex", nil), ingest.Recorded, "", ""},
		{"org not collecting", event("off", nil), ingest.DroppedDisabled, "", ""},
		{"org the token does not allow", event("initech", nil), ingest.Rejected, domain.CodeForbidden, "orgId"},
		{"another source", event("acme", func(e *domain.Event) { e.Source = domain.SourceInsightVM }), ingest.Rejected, domain.CodeForbidden, "source"},
		{"the log's own type", event("acme", func(e *domain.Event) { e.Type = domain.TypeAuditLogOptOut }), ingest.Rejected, domain.CodeForbidden, "type"},
		{"unknown type", event("acme", func(e *domain.Event) { e.Type = "NOPE" }), ingest.Rejected, domain.CodeBadUserInput, "type"},
		{"missing payload field", event("acme", func(e *domain.Event) { e.Details = json.RawMessage(`{}`) }), ingest.Rejected, domain.CodeBadUserInput, "details.userId"},
		{"far future", event("acme", func(e *domain.Event) { e.OccurredAt = time.Now().Add(time.Hour) }), ingest.Rejected, domain.CodeBadUserInput, "occurredAt"},
		{"reserved id", event("acme", func(e *domain.Event) { e.ID = "6ba7b810-9dad-51d1-80b4-00c04fd430c8" }), ingest.Rejected, domain.CodeBadUserInput, "id"},
	}
	batch := make([]domain.Event, len(tests))
	for i, tc := range tests {
		batch[i] = tc.e
	}
	results, err := rec.Record(ctx, service("acme", "globex", "off"), batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range tests {
		got := results[i]
		if got.ID != tc.e.ID || got.Status != tc.status || got.Code != tc.code || got.Field != tc.field {
			t.Errorf("%s: %+v, want %s %s on %q", tc.name, got, tc.status, tc.code, tc.field)
		}
		if got.Status == ingest.Rejected && got.Reason == "" {
			t.Errorf("%s: rejected without a reason", tc.name)
		}
	}
	if us, eu := storedCount(t, js, domain.RegionUS), storedCount(t, js, domain.RegionEU); us != 1 || eu != 1 {
		t.Fatalf("streams hold US %d, EU %d; want one good event each", us, eu)
	}
	if counts[ingest.Recorded] != 2 || counts[ingest.DroppedDisabled] != 1 || counts[ingest.Rejected] != 7 {
		t.Fatalf("tally %v", counts)
	}
}

// An event sent again with its id is a duplicate, appended once; the same
// id in another organization is another event.
func TestRecordDeduplicatesByOrgAndID(t *testing.T) {
	rec, js, _ := newRecorder(t)
	ctx := context.Background()
	e := event("acme", nil)
	again := e
	other := event("globex", func(x *domain.Event) { x.ID = e.ID })
	for i, want := range []ingest.Status{ingest.Recorded, ingest.Duplicate} {
		res, err := rec.Record(ctx, service(), []domain.Event{[]domain.Event{e, again}[i]})
		if err != nil || res[0].Status != want {
			t.Fatalf("send %d: %+v %v, want %s", i+1, res, err, want)
		}
	}
	if res, err := rec.Record(ctx, service(), []domain.Event{other}); err != nil || res[0].Status != ingest.Recorded {
		t.Fatalf("same id in another org: %+v %v", res, err)
	}
	if n := storedCount(t, js, domain.RegionUS); n != 1 {
		t.Fatalf("US holds %d messages, want 1", n)
	}
}

// Failures of the whole call: too large a batch is the caller's
// (BAD_USER_INPUT); settings that cannot be read are not, and say to send
// the same events again (UNAVAILABLE). Nothing is appended either way.
func TestRecordRefusesTheWholeCall(t *testing.T) {
	rec, js, _ := newRecorder(t)
	ctx := context.Background()
	big := make([]domain.Event, ingest.MaxBatch+1)
	for i := range big {
		big[i] = event("acme", nil)
	}
	if _, err := rec.Record(ctx, service(), big); domain.CodeOf(err) != domain.CodeBadUserInput {
		t.Fatalf("%d events: %v, want BAD_USER_INPUT", len(big), err)
	}
	if _, err := rec.Record(ctx, service(), []domain.Event{event("acme", nil), event("broken", nil)}); domain.CodeOf(err) != domain.CodeUnavailable ||
		!strings.Contains(err.Error(), "send the same events again") {
		t.Fatalf("settings unreachable: %v, want UNAVAILABLE", err)
	}
	if n := storedCount(t, js, domain.RegionUS); n != 0 {
		t.Fatalf("US holds %d messages after refused calls", n)
	}
}

// RecordJSON reads each event's text once: a key given twice or a field
// spelled otherwise rejects that event alone, naming the field, and the
// others of the batch are recorded.
func TestRecordJSONRejectsSecondReadings(t *testing.T) {
	rec, js, _ := newRecorder(t)
	good := func() json.RawMessage {
		b, _ := json.Marshal(event("acme", nil))
		return b
	}
	raws := []json.RawMessage{
		good(),
		json.RawMessage(strings.Replace(string(good()), `"orgId":"acme"`, `"orgId":"acme","orgId":"globex"`, 1)),
		json.RawMessage(strings.Replace(string(good()), `"userId":"u-1"`, `"userId":"\u0000","userId":"u-1"`, 1)),
		json.RawMessage(strings.Replace(string(good()), `"orgId"`, `"ORGID"`, 1)),
		good(),
	}
	res, err := rec.RecordJSON(context.Background(), service(), raws)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []ingest.Status{ingest.Recorded, ingest.Rejected, ingest.Rejected, ingest.Rejected, ingest.Recorded} {
		if res[i].Status != want || (want == ingest.Rejected && (res[i].Code != domain.CodeBadUserInput || res[i].Field == "")) {
			t.Errorf("event %d: %+v, want %s", i, res[i], want)
		}
	}
	if n := storedCount(t, js, domain.RegionUS); n != 2 {
		t.Fatalf("US holds %d messages, want the 2 good ones", n)
	}
}

// neverAcknowledged is JetStream on an embedded NATS with no stream, so
// appends reach got, a subscriber that never answers them: they stay in
// the async publish window, of pending appends, until the test ends.
// JetStream fails an append left unanswered after ackWait.
func neverAcknowledged(t *testing.T, pending int, ackWait time.Duration, got nats.MsgHandler) jetstream.JetStream {
	t.Helper()
	ns, err := natsx.Embedded{Dir: t.TempDir()}.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := ns.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if _, err := nc.Subscribe("audit.>", got); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(pending), jetstream.WithPublishAsyncTimeout(ackWait))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestFullPublishWindowIsRefusedWithRetryHint fills the window of appends
// awaiting acknowledgement (a subscriber takes the appends and never
// acknowledges them) and checks that a call waits about PublishWait for
// room, then is refused as UNAVAILABLE with the retry hint, instead of
// failing at once or hanging.
func TestFullPublishWindowIsRefusedWithRetryHint(t *testing.T) {
	tests := []struct {
		name        string
		wait, retry time.Duration
	}{
		{"short wait", 150 * time.Millisecond, 2 * time.Second},
		{"longer wait", 600 * time.Millisecond, 500 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			js := neverAcknowledged(t, 1, time.Minute, func(*nats.Msg) {})
			r := ingest.NewRecorder(js, settingsOf{"acme": {OrgID: "acme", Enabled: true, Region: domain.RegionUS}}, time.Now, nil)
			r.PublishWait, r.RetryAfter = tc.wait, tc.retry

			start := time.Now()
			_, err := r.Record(context.Background(), service("acme"), []domain.Event{event("acme", nil), event("acme", nil)})
			took := time.Since(start)
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.CodeUnavailable || de.RetryAfter != tc.retry {
				t.Fatalf("a full window answered %v; want UNAVAILABLE with retryAfter %s", err, tc.retry)
			}
			if took < tc.wait || took > tc.wait+5*time.Second {
				t.Fatalf("refused after %s; want after waiting about %s", took, tc.wait)
			}
		})
	}
}

// TestOrgShareKeepsOneFloodFromHoldingOthersBack: an organization whose
// appends fill its share of the publish window is refused UNAVAILABLE with
// the retry hint after the bounded wait, counted as org_share, while
// another organization's events are appended at once. Appends are taken by
// a subscriber that never acknowledges them, so they stay in flight.
func TestOrgShareKeepsOneFloodFromHoldingOthersBack(t *testing.T) {
	arrived := make(chan string, 100)
	// Appends fail unanswered after 3 s, long after the refusals below.
	js := neverAcknowledged(t, 100, 3*time.Second, func(m *nats.Msg) { arrived <- m.Subject })
	orgs := settingsOf{
		"flood": {OrgID: "flood", Enabled: true, Region: domain.RegionUS},
		"calm":  {OrgID: "calm", Enabled: true, Region: domain.RegionUS},
	}
	counted := tally{}
	r := ingest.NewRecorder(js, orgs, time.Now, counted)
	r.SetOrgShare(2)
	r.PublishWait, r.RetryAfter = 200*time.Millisecond, time.Second

	// flood's first call holds its whole share, awaiting acknowledgements.
	ctx, cancel := context.WithCancel(context.Background())
	held := make(chan error, 1)
	go func() {
		_, err := r.Record(ctx, service("flood"), []domain.Event{event("flood", nil), event("flood", nil)})
		held <- err
	}()
	for range 2 {
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("flood's first events were not appended")
		}
	}

	start := time.Now()
	_, err := r.Record(context.Background(), service("flood"), []domain.Event{event("flood", nil)})
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.CodeUnavailable || de.RetryAfter != time.Second || !strings.Contains(de.Message, "share") {
		t.Fatalf("flood past its share answered %v; want UNAVAILABLE naming its share, with retryAfter", err)
	}
	if took := time.Since(start); took < r.PublishWait {
		t.Fatalf("refused after %s, before the %s wait", took, r.PublishWait)
	}
	if n := counted["refused:org_share"]; n != 1 {
		t.Fatalf("refused org_share events counted %d, want 1", n)
	}

	// calm is not held back: its event is appended at once.
	calmCtx, calmCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer calmCancel()
	go func() { _, _ = r.Record(calmCtx, service("calm"), []domain.Event{event("calm", nil)}) }()
	select {
	case subject := <-arrived:
		if !strings.Contains(subject, ".calm.") {
			t.Fatalf("appended %s; want calm's event (flood's refused one must not be appended)", subject)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("calm's event waited behind flood's share")
	}

	// flood's first call ends (its client left) with its appends still in
	// flight: they still fill its share, so flood is still refused.
	cancel()
	if err := <-held; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled call answered %v", err)
	}
	_, err = r.Record(context.Background(), service("flood"), []domain.Event{event("flood", nil)})
	if !errors.As(err, &de) || de.Code != domain.CodeUnavailable || !strings.Contains(de.Message, "share") {
		t.Fatalf("flood while its abandoned appends are in flight answered %v; want UNAVAILABLE naming its share", err)
	}

	// Once JetStream fails those appends (3 s unanswered), the share is
	// free again and flood's next call is appended.
	deadline := time.Now().Add(10 * time.Second)
	for {
		try, cancelTry := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err = r.Record(try, service("flood"), []domain.Event{event("flood", nil)})
		cancelTry()
		if !errors.As(err, &de) || !strings.Contains(de.Message, "share") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("flood's share was not given back once its appends settled")
		}
	}
	select {
	case subject := <-arrived:
		if !strings.Contains(subject, ".flood.") {
			t.Fatalf("appended %s; want flood's event", subject)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("flood's call past its share was not appended")
	}
}
