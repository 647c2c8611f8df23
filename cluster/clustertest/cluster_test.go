package clustertest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/clusterenv"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
)

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a NATS cluster and auditd processes")
	}
}

// declared names every stream auditd declares, buckets by their streams.
func declared() []string {
	names := []string{natsx.ControlStream, natsx.CheckpointStream, natsx.ExportQueueStream,
		"KV_" + natsx.ExportJobsBucket, "KV_" + natsx.APQBucket}
	for _, r := range domain.Regions {
		names = append(names, natsx.AuditStream(r), "OBJ_"+natsx.ExportFilesBucket(r))
	}
	return names
}

// peers are the servers that hold stream: its leader and its replicas.
func peers(t *testing.T, js jetstream.JetStream, stream string) (*jetstream.StreamInfo, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info := s.CachedInfo()
	if info.Cluster == nil {
		t.Fatalf("stream %s has no cluster info", stream)
	}
	names := []string{info.Cluster.Leader}
	for _, p := range info.Cluster.Replicas {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return info, names
}

// With region placement, a region's stream and export bucket live only on
// the nodes tagged with that region; other regions may use any node. When
// the replicas asked for outnumber the region's nodes, auditd does not
// start, and says which stream and which tag.
func TestRegionPlacementKeepsStreamsOnTaggedNodes(t *testing.T) {
	skipShort(t)
	// n3 stands outside region EU.
	c := clusterenv.StartNATSCluster(t, clusterenv.WithNodeTags(2, "region:us", "region:ca", "region:au", "region:ap"))
	a := clusterenv.StartAuditd(t, c, clusterenv.AuditdOptions{Replicas: 2, Placement: true})
	js := c.JetStream(t)
	for _, stream := range []string{natsx.AuditStream(domain.RegionEU), "OBJ_" + natsx.ExportFilesBucket(domain.RegionEU)} {
		info, got := peers(t, js, stream)
		if want := []string{"n1", "n2"}; !slices.Equal(got, want) {
			t.Errorf("%s is on %v (leader %s), want %v: n3 has no region:eu", stream, got, info.Cluster.Leader, want)
		}
	}
	for _, r := range []domain.Region{domain.RegionUS, domain.RegionAP} {
		info, got := peers(t, js, natsx.AuditStream(r))
		tags := info.Config.Placement
		if len(got) != 2 || tags == nil || !slices.Equal(tags.Tags, []string{"region:" + r.Lower()}) {
			t.Errorf("%s is on %v with placement %+v, want 2 of n1-n3 tagged region:%s", info.Config.Name, got, tags, r.Lower())
		}
	}
	if err := a.Stop(); err != nil {
		t.Fatalf("stop auditd: %v", err)
	}

	// Three replicas of EU need three nodes tagged region:eu.
	start := time.Now()
	_, err := clusterenv.TryStartAuditd(t, c, clusterenv.AuditdOptions{Replicas: 3, Placement: true})
	if err == nil {
		t.Fatal("auditd started with 3 replicas of AUDIT_EU on 2 nodes tagged region:eu")
	}
	t.Logf("auditd's startup error, after %s: %v", time.Since(start).Round(time.Millisecond), err)
	for _, want := range []string{"stream AUDIT_EU", "wanted replicas 3, placement region:eu", "3 servers tagged region:eu"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("startup error does not say %q:\n%v", want, err)
		}
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("auditd took %s to give up; want a prompt error, not a timeout", took)
	}
}

// AUDITD_REPLICAS sets the replicas of every stream and bucket auditd
// declares; started again with another count, auditd says what it changes
// in each before it changes it.
func TestReplicasSettingAppliesToEveryStream(t *testing.T) {
	skipShort(t)
	c := clusterenv.StartNATSCluster(t)
	a := clusterenv.StartAuditd(t, c, clusterenv.AuditdOptions{Replicas: 3})
	if err := a.Stop(); err != nil {
		t.Fatalf("stop auditd: %v", err)
	}
	js := c.JetStream(t)
	for _, stream := range declared() {
		info, got := peers(t, js, stream)
		if info.Config.Replicas != 3 || !slices.Equal(got, []string{"n1", "n2", "n3"}) {
			t.Errorf("%s: %d replicas on %v, want 3 on n1-n3", stream, info.Config.Replicas, got)
		}
	}

	a = clusterenv.StartAuditd(t, c, clusterenv.AuditdOptions{Replicas: 1})
	log := a.Log()
	for _, want := range []string{
		"stream AUDIT_EU: replicas 3 → 1; updating",
		"stream AUDITCTL: replicas 3 → 1; updating",
		"bucket AUDIT_APQ: replicas 3 → 1; updating",
		"bucket AUDIT_EXPORTS_US: replicas 3 → 1; updating",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("auditd's log does not say %q", want)
		}
	}
	// The server drops the surplus peers in the background.
	deadline := time.Now().Add(20 * time.Second)
	for _, stream := range declared() {
		for {
			info, got := peers(t, js, stream)
			if info.Config.Replicas == 1 && len(got) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: %d replicas on %v, want 1", stream, info.Config.Replicas, got)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// Two auditd instances on one cluster and one database serve one log: an
// event recorded through one is read through the other, also while a NATS
// node is down.
func TestTwoInstancesServeOneLog(t *testing.T) {
	skipShort(t)
	c := clusterenv.StartNATSCluster(t)
	opts := clusterenv.AuditdOptions{Replicas: 3, Placement: true}
	a1 := clusterenv.StartAuditd(t, c, opts)
	a2 := clusterenv.StartAuditd(t, c, opts)
	const org = "acme"
	admin := testenv.AdminToken(t, org)
	var enabled struct{ EnableAuditLog struct{ Enabled bool } }
	a1.Do(t, admin, `mutation { enableAuditLog(region: EU) { enabled } }`, nil).MustData(t, &enabled)

	record(t, a1, org, "u-1")
	waitFor(t, a2, admin, "u-1")

	// One node of three down leaves every R3 stream a quorum.
	c.Kill(2)
	record(t, a2, org, "u-2")
	waitFor(t, a1, admin, "u-2")
	c.Restart(2)

	for i, a := range []*clusterenv.Auditd{a1, a2} {
		if err := a.Stop(); err != nil {
			t.Errorf("auditd %d: %v", i+1, err)
		}
	}
}

// record records a USER_CREATED event of org for user id through a. The
// API answers UNAVAILABLE while a stream elects a new leader, as after a
// node is lost; record then sends the same event again, as a client should,
// for up to 20 s: its id makes that safe.
func record(t *testing.T, a *clusterenv.Auditd, org, id string) {
	t.Helper()
	event := map[string]any{
		"id": uuid.NewString(), "orgId": org, "type": "USER_CREATED", "source": "PLATFORM",
		"occurredAt": time.Now().UTC().Format(time.RFC3339),
		"actor":      map[string]any{"kind": "USER", "id": "u-0", "name": "Grace Hopper", "email": "grace@acme.example"},
		"details":    map[string]any{"userId": id, "userEmail": id + "@acme.example"},
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := a.Do(t, testenv.ServiceToken(t), `mutation($events: [AuditEventInput!]!) {
			recordAuditEvents(events: $events) { results { status reason } } }`,
			map[string]any{"events": []map[string]any{event}})
		if len(r.Errors) == 1 && r.Errors[0].Code() == "UNAVAILABLE" && time.Now().Before(deadline) {
			time.Sleep(250 * time.Millisecond)
			continue
		}
		var out struct {
			RecordAuditEvents struct {
				Results []struct{ Status, Reason string }
			}
		}
		r.MustData(t, &out)
		if res := out.RecordAuditEvents.Results; len(res) != 1 || res[0].Status != "RECORDED" {
			t.Fatalf("record through %s: %+v", a.URL, res)
		}
		return
	}
}

// waitFor waits until a lists the USER_CREATED event of user id.
func waitFor(t *testing.T, a *clusterenv.Auditd, admin, id string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var out struct {
			AuditEvents struct {
				Edges []struct {
					Node struct{ Details map[string]any }
				}
			}
		}
		a.Do(t, admin, `{ auditEvents(first: 50, filter: {types: [USER_CREATED]}) { edges { node { details } } } }`, nil).MustData(t, &out)
		for _, e := range out.AuditEvents.Edges {
			if e.Node.Details["userId"] == id {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not list the event of %s after 20s", a.URL, id)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// An opt-in or opt-out acknowledged by one instance holds at once on every
// other: the next event sent through another instance is stored after an
// opt-in and dropped after an opt-out, never decided on a replica that has
// not applied the change yet.
func TestSettingsChangeHoldsOnEveryInstanceAtOnce(t *testing.T) {
	skipShort(t)
	c := clusterenv.StartNATSCluster(t)
	opts := clusterenv.AuditdOptions{Replicas: 3}
	a1 := clusterenv.StartAuditd(t, c, opts)
	a2 := clusterenv.StartAuditd(t, c, opts)
	for i := range 20 {
		org := fmt.Sprintf("flip-%02d", i)
		admin := testenv.AdminToken(t, org)
		var on struct{ EnableAuditLog struct{ Enabled bool } }
		a1.Do(t, admin, `mutation { enableAuditLog(region: US) { enabled } }`, nil).MustData(t, &on)
		if got := recordStatus(t, a2, org); got != "RECORDED" {
			t.Errorf("%s: the first event after its opt-in through the other instance was %s, want RECORDED", org, got)
		}
		var off struct{ DisableAuditLog struct{ Enabled bool } }
		a2.Do(t, admin, `mutation { disableAuditLog { enabled } }`, nil).MustData(t, &off)
		if got := recordStatus(t, a1, org); got != "DROPPED_DISABLED" {
			t.Errorf("%s: the first event after its opt-out through the other instance was %s, want DROPPED_DISABLED", org, got)
		}
	}
}

// recordStatus records one USER_CREATED event of org through a and returns
// its status.
func recordStatus(t *testing.T, a *clusterenv.Auditd, org string) string {
	t.Helper()
	event := map[string]any{
		"id": uuid.NewString(), "orgId": org, "type": "USER_CREATED", "source": "PLATFORM",
		"occurredAt": time.Now().UTC().Format(time.RFC3339),
		"actor":      map[string]any{"kind": "USER", "id": "u-0", "name": "Grace Hopper", "email": "grace@acme.example"},
		"details":    map[string]any{"userId": "u-1", "userEmail": "u-1@acme.example"},
	}
	var out struct {
		RecordAuditEvents struct{ Results []struct{ Status string } }
	}
	a.Do(t, testenv.ServiceToken(t), `mutation($events: [AuditEventInput!]!) {
		recordAuditEvents(events: $events) { results { status } } }`,
		map[string]any{"events": []map[string]any{event}}).MustData(t, &out)
	if len(out.RecordAuditEvents.Results) != 1 {
		t.Fatalf("record through %s: %+v", a.URL, out.RecordAuditEvents.Results)
	}
	return out.RecordAuditEvents.Results[0].Status
}
