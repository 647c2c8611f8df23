package natsx_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
)

// A regional stream keeps its messages the retention plus the margin, so
// it always holds what the read model shows; declaring the streams again
// updates the maximum age of existing ones.
func TestStreamsMaxAgeIsRetentionPlusMargin(t *testing.T) {
	ctx := context.Background()
	js := testenv.JetStream(t, natsx.Streams{DuplicateWindow: time.Minute})
	tests := []struct {
		name      string
		retention map[domain.Region]time.Duration
		want      map[domain.Region]time.Duration
	}{
		{"forever", nil, map[domain.Region]time.Duration{domain.RegionUS: 0, domain.RegionEU: 0}},
		{"400 days in US", map[domain.Region]time.Duration{domain.RegionUS: 400 * domain.Day},
			map[domain.Region]time.Duration{domain.RegionUS: 433 * domain.Day, domain.RegionEU: 0}},
		{"back to forever", map[domain.Region]time.Duration{}, map[domain.Region]time.Duration{domain.RegionUS: 0}},
	}
	for _, tc := range tests {
		if err := (natsx.Streams{DuplicateWindow: time.Minute, Retention: tc.retention}).Ensure(ctx, js); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for r, want := range tc.want {
			s, err := js.Stream(ctx, natsx.AuditStream(r))
			if err != nil {
				t.Fatal(err)
			}
			if got := s.CachedInfo().Config.MaxAge; got != want {
				t.Errorf("%s: %s keeps messages %s, want %s", tc.name, r, got, want)
			}
			if cfg := s.CachedInfo().Config; !cfg.DenyDelete || !cfg.DenyPurge {
				t.Errorf("%s: %s allows delete or purge", tc.name, r)
			}
		}
	}
}

// TestStreamAppendsTheOrgSlot checks that the stream stores each event with
// the slot SlotOf computes, so partitions and the code agree on every org.
func TestStreamAppendsTheOrgSlot(t *testing.T) {
	ctx := context.Background()
	js := testenv.JetStream(t, natsx.Streams{DuplicateWindow: time.Minute})
	stream, err := js.Stream(ctx, natsx.AuditStream(domain.RegionEU))
	if err != nil {
		t.Fatal(err)
	}
	slots := map[int]bool{}
	for i := range 200 {
		e := &domain.Event{OrgID: fmt.Sprintf("org-%d", i), Source: "PLATFORM", Type: "USER_CREATED"}
		ack, err := js.Publish(ctx, natsx.AuditSubject(domain.RegionEU, e), []byte("{}"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := stream.GetMsg(ctx, ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		slot := natsx.SlotOf(e.OrgID)
		if want := natsx.AuditSubject(domain.RegionEU, e) + slotSuffix(slot); m.Subject != want {
			t.Fatalf("stored on %q, want %q", m.Subject, want)
		}
		if !natsx.IsAuditSubjectOf(m.Subject, e) {
			t.Fatalf("%q is not the subject of its own event", m.Subject)
		}
		other := *e
		other.OrgID = fmt.Sprintf("org-%d", i+1)
		if natsx.SlotOf(other.OrgID) != slot && natsx.IsAuditSubjectOf(natsx.AuditSubject(domain.RegionEU, &other)+slotSuffix(slot), &other) {
			t.Fatalf("a subject with another org's slot passed as %s's", other.OrgID)
		}
		slots[slot] = true
	}
	if len(slots) < natsx.Slots/2 {
		t.Fatalf("200 orgs fell in only %d of %d slots", len(slots), natsx.Slots)
	}
}

// slotSuffix is the tokens the stream appends for slot.
func slotSuffix(slot int) string {
	out := ""
	for m := 2; m <= natsx.Slots; m *= 2 {
		out += "." + strconv.Itoa(slot%m)
	}
	return out
}

// Partition i of P reads exactly the slots s with s mod P = i through its
// one filter, for every P the layout allows.
func TestPartitionSubjectsSelectTheirSlots(t *testing.T) {
	for count := 1; count <= natsx.Slots; count *= 2 {
		for slot := range natsx.Slots {
			subject := "audit.us.acme.PLATFORM.USER_CREATED" + slotSuffix(slot)
			for i := range count {
				want := slot%count == i
				if got := matches(natsx.PartitionSubjects(domain.RegionUS, i, count), subject); got != want {
					t.Fatalf("partition %d of %d matches slot %d: %v, want %v", i, count, slot, got, want)
				}
			}
		}
	}
	for _, bad := range []int{0, 3, 6, 65, 128, -2} {
		if natsx.ValidPartitionCount(bad) {
			t.Errorf("%d partitions accepted", bad)
		}
	}
}

// matches is NATS subject matching of a filter with * wildcards.
func matches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	if len(f) != len(s) {
		return false
	}
	for i := range f {
		if f[i] != "*" && f[i] != s[i] {
			return false
		}
	}
	return true
}

// TestEnsureCapsAnExistingAPQBucket: a persisted query bucket declared
// before it had a byte cap (as older deployments did) gets the cap, the
// per-query size and the TTL when the streams are declared again.
func TestEnsureCapsAnExistingAPQBucket(t *testing.T) {
	ctx := context.Background()
	streams := natsx.Streams{DuplicateWindow: time.Minute}
	js := testenv.JetStream(t, streams)
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: natsx.APQBucket, TTL: natsx.DefaultAPQTTL, MaxValueSize: 64 << 10, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	if err := streams.Ensure(ctx, js); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, "KV_"+natsx.APQBucket)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if cfg.MaxBytes != natsx.DefaultAPQMaxBytes || cfg.MaxMsgSize != natsx.MaxAPQQueryBytes || cfg.MaxAge != natsx.DefaultAPQTTL {
		t.Fatalf("bucket keeps max bytes %d, max value %d, TTL %s; want %d, %d, %s", cfg.MaxBytes, cfg.MaxMsgSize, cfg.MaxAge,
			natsx.DefaultAPQMaxBytes, natsx.MaxAPQQueryBytes, natsx.DefaultAPQTTL)
	}
}
