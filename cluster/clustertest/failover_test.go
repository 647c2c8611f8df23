package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/clusterenv"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
)

// ingester records batches of new events through several auditd processes,
// as a client that knows more than one address does: a batch that fails (an
// error, UNAVAILABLE during an election, a refused connection to a dead
// instance) is sent again, unchanged, through the next address until every
// event in it is RECORDED or DUPLICATE. The ids make that safe.
type ingester struct {
	t       *testing.T
	targets []*clusterenv.Auditd
	orgs    []string
	token   string
	client  *http.Client

	mu          sync.Mutex
	acked       map[string]bool
	recorded    int
	duplicates  int
	retries     int
	unavailable int
	lastAck     time.Time
	longestWait time.Duration // the longest time without an acknowledgement
}

func newIngester(t *testing.T, orgs []string, targets ...*clusterenv.Auditd) *ingester {
	return &ingester{t: t, targets: targets, orgs: orgs, token: testenv.ServiceToken(t),
		client: &http.Client{Timeout: 15 * time.Second}, acked: map[string]bool{}}
}

// run sends batches of size events from each of workers senders, and
// returns once every one is acknowledged.
func (in *ingester) run(workers, batches, size int) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				in.send(w+b, in.batch(w*batches+b, size))
			}
		})
	}
	wg.Wait()
}

func (in *ingester) batch(n, size int) []map[string]any {
	out := make([]map[string]any, size)
	for i := range out {
		org := in.orgs[(n*size+i)%len(in.orgs)]
		user := fmt.Sprintf("u-%d-%d", n, i)
		out[i] = map[string]any{
			"id": uuid.NewString(), "orgId": org, "type": "USER_CREATED", "source": "PLATFORM",
			"occurredAt": time.Now().UTC().Format(time.RFC3339Nano),
			"actor":      map[string]any{"kind": "USER", "id": "u-0", "name": "Grace Hopper", "email": "grace@" + org + ".example"},
			"details":    map[string]any{"userId": user, "userEmail": user + "@" + org + ".example"},
		}
	}
	return out
}

const recordMutation = `mutation($events: [AuditEventInput!]!) { recordAuditEvents(events: $events) { results { id status reason } } }`

// send delivers one batch, starting with target first.
func (in *ingester) send(first int, events []map[string]any) {
	body, _ := json.Marshal(map[string]any{"query": recordMutation, "variables": map[string]any{"events": events}})
	deadline := time.Now().Add(90 * time.Second)
	for attempt := 0; ; attempt++ {
		if time.Now().After(deadline) {
			in.t.Errorf("a batch was not acknowledged within 90s")
			return
		}
		target := in.targets[(first+attempt)%len(in.targets)]
		results, unavailable, err := in.post(target, body)
		if err != nil || unavailable {
			in.mu.Lock()
			in.retries++
			if unavailable {
				in.unavailable++
			}
			in.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
			continue
		}
		in.mu.Lock()
		now := time.Now()
		if !in.lastAck.IsZero() {
			in.longestWait = max(in.longestWait, now.Sub(in.lastAck))
		}
		in.lastAck = now
		for _, r := range results {
			switch r.Status {
			case "RECORDED":
				in.recorded++
			case "DUPLICATE":
				in.duplicates++
			default:
				in.t.Errorf("event %s: %s (%s)", r.ID, r.Status, r.Reason)
			}
			in.acked[r.ID] = true
		}
		in.mu.Unlock()
		return
	}
}

type result struct{ ID, Status, Reason string }

// post sends one batch; unavailable says auditd answered that it may be
// sent again (UNAVAILABLE); any other GraphQL error fails the test.
func (in *ingester) post(a *clusterenv.Auditd, body []byte) ([]result, bool, error) {
	req, _ := http.NewRequest(http.MethodPost, a.URL+"/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+in.token)
	resp, err := in.client.Do(req)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, false, err
	}
	var out struct {
		Data struct {
			RecordAuditEvents struct{ Results []result }
		}
		Errors []testenv.GraphQLError
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, false, fmt.Errorf("status %d: %s", resp.StatusCode, data)
	}
	if len(out.Errors) > 0 {
		if out.Errors[0].Code() == "UNAVAILABLE" {
			return nil, true, nil
		}
		in.t.Errorf("record: %s", data)
		return nil, false, fmt.Errorf("record: %s", data)
	}
	return out.Data.RecordAuditEvents.Results, false, nil
}

func (in *ingester) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.acked)
}

func (in *ingester) summary() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return fmt.Sprintf("%d events acknowledged (%d RECORDED, %d DUPLICATE on a retry), %d batches retried (%d UNAVAILABLE), longest wait between acknowledgements %s",
		len(in.acked), in.recorded, in.duplicates, in.retries, in.unavailable, in.longestWait.Round(time.Millisecond))
}

// enable opts each org in, storing in region US.
func enable(t *testing.T, a *clusterenv.Auditd, orgs []string) {
	t.Helper()
	for _, org := range orgs {
		var out struct{ EnableAuditLog struct{ Enabled bool } }
		a.Do(t, testenv.AdminToken(t, org), `mutation { enableAuditLog(region: US) { enabled } }`, nil).MustData(t, &out)
	}
}

func orgNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("org-%02d", i)
	}
	return out
}

// assertExactlyOnce waits until region US's read model holds the ingested
// events of orgs, then checks that it holds each acknowledged event once
// and nothing else, and that reconcile, run as an operator runs it, finds
// no gap.
func assertExactlyOnce(t *testing.T, c *clusterenv.NATSCluster, opts clusterenv.AuditdOptions, in *ingester) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	want := in.count()
	var ids []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		rows, err := conn.Query(ctx, `SELECT id FROM audit_us.events WHERE org_id = ANY($1) AND type = 'USER_CREATED'`, in.orgs)
		if err != nil {
			t.Fatal(err)
		}
		if ids, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
		if len(ids) >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	wrong := 0
	for id := range in.acked {
		if seen[id] != 1 {
			if wrong++; wrong <= 5 {
				t.Errorf("acknowledged event %s is in the read model %d times", id, seen[id])
			}
		}
	}
	if len(ids) != want || len(seen) != want {
		t.Errorf("read model holds %d rows of %d ids; %d events were acknowledged", len(ids), len(seen), want)
	}
	// Reconcile compares up to the read model's checkpoint, the least of
	// its slots': wait until every partition has reached the stream's head.
	stream, err := c.JetStream(t).Stream(ctx, natsx.AuditStream(domain.RegionUS))
	if err != nil {
		t.Fatal(err)
	}
	head := stream.CachedInfo().State.LastSeq
	waitUntil(t, 30*time.Second, "every slot's checkpoint at the stream's head", func() bool {
		var slots int
		var least int64
		err := conn.QueryRow(ctx, `SELECT count(*), coalesce(min(seq), 0) FROM audit_us.checkpoint WHERE stream LIKE 'AUDIT_US.%'`).Scan(&slots, &least)
		if err != nil {
			t.Fatal(err)
		}
		return slots == natsx.Slots && uint64(least) >= head
	})
	out, err := c.Command(t, opts, "projections", "reconcile").CombinedOutput()
	if err != nil {
		t.Fatalf("auditd projections reconcile: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, natsx.AuditStream(domain.RegionUS)+":") {
			if !strings.Contains(line, " 0 gaps") {
				t.Errorf("reconcile: %s", line)
			}
			var through uint64
			if i := strings.Index(line, " through "); i < 0 {
				t.Errorf("reconcile: %s", line)
			} else if _, err := fmt.Sscanf(line[i:], " through %d", &through); err != nil || through < head {
				t.Errorf("reconcile compared through %d, not the stream's head %d: %s", through, head, line)
			}
			t.Logf("reconcile: %s", line)
		}
	}
}

// streamLeader is the index of the node leading stream.
func streamLeader(t *testing.T, c *clusterenv.NATSCluster, stream string) int {
	t.Helper()
	info, _ := peers(t, c.JetStream(t), stream)
	for i := range clusterenv.ClusterSize {
		if c.Name(i) == info.Cluster.Leader {
			return i
		}
	}
	t.Fatalf("stream %s is led by %q, not a node of the cluster", stream, info.Cluster.Leader)
	return -1
}

// waitUntil polls cond every 50ms for up to limit and returns how long it
// took to hold.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("after %s: %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// twoInstances starts a NATS cluster and two auditd processes on it, with
// three replicas, region placement, the partitions given and env, and opts
// orgs in to region US.
func twoInstances(t *testing.T, partitions int, orgs []string, env ...string) (*clusterenv.NATSCluster, clusterenv.AuditdOptions, *clusterenv.Auditd, *clusterenv.Auditd) {
	t.Helper()
	skipShort(t)
	c := clusterenv.StartNATSCluster(t)
	opts := clusterenv.AuditdOptions{Replicas: 3, Placement: true,
		Env: append([]string{fmt.Sprintf("AUDITD_PROJECTION_PARTITIONS=%d", partitions)}, env...)}
	a1 := clusterenv.StartAuditd(t, c, opts)
	a2 := clusterenv.StartAuditd(t, c, opts)
	enable(t, a1, orgs)
	return c, opts, a1, a2
}

// leaderOutDuringIngest takes the node leading region US's stream away
// with stop while two instances take events, brings it back once they are
// done, and checks
// that every acknowledged event is in the read model exactly once and
// reconcile finds no gap.
func leaderOutDuringIngest(t *testing.T, how string, stop func(c *clusterenv.NATSCluster, node int)) {
	orgs := orgNames(8)
	c, opts, a1, a2 := twoInstances(t, 4, orgs)

	in := newIngester(t, orgs, a1, a2)
	done := make(chan struct{})
	go func() { defer close(done); in.run(4, 40, 50) }()
	waitUntil(t, 60*time.Second, "2,000 events acknowledged", func() bool { return in.count() >= 2000 })
	stream := natsx.AuditStream(domain.RegionUS)
	leader := streamLeader(t, c, stream)
	stopped := time.Now()
	stop(c, leader)
	t.Logf("%s of %s, leader of %s, after %d events; gone %s later", how, c.Name(leader), stream, in.count(),
		time.Since(stopped).Round(time.Millisecond))
	<-done
	t.Logf("ingest: %s; finished %s after the %s", in.summary(), time.Since(stopped).Round(time.Millisecond), how)
	if newLeader := streamLeader(t, c, stream); newLeader == leader {
		t.Fatalf("%s still leads after the %s", c.Name(leader), how)
	}
	c.Restart(leader)
	t.Logf("%s back %s after the %s", c.Name(leader), time.Since(stopped).Round(time.Millisecond), how)
	assertExactlyOnce(t, c, opts, in)
}

// SIGKILL the node leading region US's stream while two instances take
// events: ingest answers UNAVAILABLE during the election, the client sends
// the same batch again, and every acknowledged event is in the read model
// exactly once.
func TestNodeLossDuringIngest(t *testing.T) {
	leaderOutDuringIngest(t, "SIGKILL", (*clusterenv.NATSCluster).Kill)
}

// Restart the node leading region US's stream as an operator does, with
// SIGTERM (a graceful shutdown), while two instances take events: the same
// guarantees.
func TestNodeRestartDuringIngest(t *testing.T) {
	leaderOutDuringIngest(t, "SIGTERM", (*clusterenv.NATSCluster).Terminate)
}

// SIGKILL one of two instances while both take events: the other takes
// over its partitions within seconds, and the read model equals the stream.
func TestInstanceLossHandsOverPartitions(t *testing.T) {
	orgs := orgNames(16)
	c, opts, a1, a2 := twoInstances(t, 4, orgs)
	stream := natsx.AuditStream(domain.RegionUS)
	shared := waitUntil(t, 30*time.Second, "two partitions each", func() bool {
		return len(a1.Ready(t).Held(stream)) == 2 && len(a2.Ready(t).Held(stream)) == 2
	})
	t.Logf("partitions shared two and two %s after the second instance was ready", shared.Round(time.Millisecond))

	in := newIngester(t, orgs, a1, a2)
	done := make(chan struct{})
	go func() { defer close(done); in.run(4, 40, 50) }()
	waitUntil(t, 60*time.Second, "2,000 events acknowledged", func() bool { return in.count() >= 2000 })
	held := a1.Ready(t).Held(stream)
	a1.Kill()
	took := waitUntil(t, 30*time.Second, "the survivor projects every partition", func() bool {
		return slices.Equal(a2.Ready(t).Held(stream), []int{0, 1, 2, 3})
	})
	t.Logf("SIGKILL of the instance projecting partitions %v; the other instance projected them %s later", held, took.Round(time.Millisecond))
	<-done
	t.Logf("ingest: %s", in.summary())
	assertExactlyOnce(t, c, opts, in)
	if r := a2.Ready(t); r.Code != http.StatusOK {
		t.Fatalf("survivor not ready: %+v", r)
	}
}

// SIGSTOP one of two instances while events arrive: its processes and
// connections stay, so only silence tells. Postgres ends its sessions after
// the holder timeout, the other instance takes its partitions and stays
// ready; after SIGCONT the frozen one writes nothing stale (fenced), takes
// its share again, and every event is in the read model exactly once.
func TestFrozenInstanceHandsOverPartitions(t *testing.T) {
	orgs := orgNames(16)
	c, opts, a1, a2 := twoInstances(t, 4, orgs, "AUDITD_HOLDER_TIMEOUT=3s")
	stream := natsx.AuditStream(domain.RegionUS)
	waitUntil(t, 30*time.Second, "two partitions each", func() bool {
		return len(a1.Ready(t).Held(stream)) == 2 && len(a2.Ready(t).Held(stream)) == 2
	})
	in := newIngester(t, orgs, a2)
	done := make(chan struct{})
	go func() { defer close(done); in.run(4, 40, 50) }()
	waitUntil(t, 60*time.Second, "2,000 events acknowledged", func() bool { return in.count() >= 2000 })
	held := a1.Ready(t).Held(stream)
	a1.Freeze()
	frozen := time.Now()
	took := waitUntil(t, 30*time.Second, "the other instance projects every partition", func() bool {
		return slices.Equal(a2.Ready(t).Held(stream), []int{0, 1, 2, 3})
	})
	t.Logf("SIGSTOP of the instance projecting partitions %v; the other projected them %s later (holder timeout 3s)", held, took.Round(time.Millisecond))
	if r := a2.Ready(t); r.Code != http.StatusOK {
		t.Errorf("the healthy instance is not ready while the other is frozen: %+v", r)
	}
	<-done
	thawed := time.Now()
	a1.Thaw()
	rejoined := waitUntil(t, 30*time.Second, "the thawed instance takes its share again", func() bool {
		return len(a1.Ready(t).Held(stream)) == 2 && len(a2.Ready(t).Held(stream)) == 2
	})
	t.Logf("frozen for %s; after SIGCONT it held two partitions again within %s; ingest: %s",
		thawed.Sub(frozen).Round(time.Millisecond), rejoined.Round(time.Millisecond), in.summary())
	assertExactlyOnce(t, c, opts, in)
}

// SIGKILL the instance running an export and serving a live subscription:
// the other instance finishes the export (a second attempt), and the
// subscriber, reconnecting to it with after, misses nothing.
func TestInstanceLossMidExportAndLive(t *testing.T) {
	org := "acme"
	c, opts, a1, a2 := twoInstances(t, 2, []string{org}, "AUDITD_EXPORT_ACK_WAIT=3s")
	instances := []*clusterenv.Auditd{a1, a2}
	admin := testenv.AdminToken(t, org)
	in := newIngester(t, []string{org}, instances...)
	in.run(2, 5, 50)
	assertExactlyOnce(t, c, opts, in)

	// Hold every export at its first query, so the kill lands mid-export.
	ctx := context.Background()
	lock, err := pgx.Connect(ctx, c.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(ctx)
	tx, err := lock.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE audit_us.events IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	var started struct{ StartAuditExport struct{ ID string } }
	instances[0].Do(t, admin, `mutation { startAuditExport(filter: {types: [USER_CREATED]}) { id } }`, nil).MustData(t, &started)
	job := started.StartAuditExport.ID
	var runner, other *clusterenv.Auditd
	waitUntil(t, 30*time.Second, "an instance starts the export", func() bool {
		for i, a := range instances {
			if strings.Contains(a.Log(), `"export_id":"`+job+`"`) && strings.Contains(a.Log(), "export started") {
				runner, other = a, instances[1-i]
				return true
			}
		}
		return false
	})

	// The subscriber is on the instance about to die.
	filter := map[string]any{"types": []string{"USER_CREATED"}}
	live, err := testenv.Subscribe(t, runner.URL, admin, filter, "", 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The subscription misses nothing once its consumer exists on the
	// server, which is when the instance counts it.
	for deadline := time.Now().Add(30 * time.Second); runner.Metric(t, "auditlog_live_subscriptions") < 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the live subscription was not served after 30s")
		}
	}
	before := newIngester(t, []string{org}, other)
	before.run(1, 1, 5)
	var last testenv.LiveEvent
	for range 5 {
		if last, err = live.Next(); err != nil {
			t.Fatalf("live before the kill: %v", err)
		}
	}
	runner.Kill()
	killed := time.Now()
	if _, err := live.Next(); err == nil {
		t.Fatal("the subscription outlived its instance")
	}
	during := newIngester(t, []string{org}, other)
	during.run(1, 1, 7)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	resumed, err := testenv.Subscribe(t, other.URL, admin, filter, last.LiveCursor, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 7 {
		e, err := resumed.Next()
		if err != nil {
			t.Fatalf("live after reconnecting: %v (got %d of 7)", err, len(got))
		}
		got = append(got, e.ID)
	}
	for _, id := range got {
		if !during.acked[id] {
			t.Fatalf("after reconnecting, got %s, not one of the 7 events recorded while the subscriber was away", id)
		}
	}
	t.Logf("live: 5 events before the kill, the 7 recorded while away replayed in order after reconnecting with after")

	var status struct {
		ExportJob struct {
			Status             string
			Attempts, RowCount int
			DownloadURL        string
		}
	}
	waitUntil(t, 60*time.Second, "the other instance finishes the export", func() bool {
		other.Do(t, admin, `query($id: ID!) { exportJob(id: $id) { status attempts rowCount downloadUrl } }`,
			map[string]any{"id": job}).MustData(t, &status)
		return status.ExportJob.Status == "SUCCEEDED" || status.ExportJob.Status == "FAILED"
	})
	finished := time.Since(killed)
	j := status.ExportJob
	if j.Status != "SUCCEEDED" || j.Attempts != 2 {
		t.Fatalf("export after its instance died: %+v, want SUCCEEDED on attempt 2", j)
	}
	if !strings.Contains(other.Log(), `"export_id":"`+job+`"`) {
		t.Fatalf("the export was not run again by %s", other.URL)
	}
	resp, err := http.Get(j.DownloadURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	file, _ := io.ReadAll(resp.Body)
	if lines := strings.Count(string(file), "\n"); lines != j.RowCount+1 || j.RowCount < in.count()+12 {
		t.Fatalf("the file has %d lines for %d rows; %d events were recorded", lines, j.RowCount, in.count()+12)
	}
	t.Logf("export: SIGKILL mid-export; finished by the other instance on attempt 2, %s after the kill, %d rows",
		finished.Round(time.Millisecond), j.RowCount)
}

// Changing the number of partitions is one command while two instances
// project: both switch to the new layout within seconds, the new
// partitions start where their slots stopped, and nothing is lost or
// applied twice.
func TestRepartitionRunningInstances(t *testing.T) {
	orgs := orgNames(16)
	c, opts, a1, a2 := twoInstances(t, 2, orgs)
	in := newIngester(t, orgs, a1, a2)
	in.run(2, 10, 50)

	done := make(chan struct{})
	go func() { defer close(done); in.run(2, 20, 50) }()
	out, err := c.Command(t, opts, "projections", "partitions", "8").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "8 partitions per regional stream (was 2)") {
		t.Fatalf("auditd projections partitions 8: %v\n%s", err, out)
	}
	changed := time.Now()
	stream := natsx.AuditStream(domain.RegionUS)
	waitUntil(t, 30*time.Second, "both instances project four of eight partitions", func() bool {
		h1, h2 := a1.Ready(t).Held(stream), a2.Ready(t).Held(stream)
		all := append(slices.Clone(h1), h2...)
		slices.Sort(all)
		return len(h1) == 4 && len(h2) == 4 && slices.Equal(all, []int{0, 1, 2, 3, 4, 5, 6, 7})
	})
	t.Logf("layout 2 → 8 while ingesting: both instances ran the new layout %s after the command", time.Since(changed).Round(time.Millisecond))
	<-done
	t.Logf("ingest: %s", in.summary())
	assertExactlyOnce(t, c, opts, in)

	// Bad input gets a clear refusal and changes nothing.
	for _, bad := range []string{"0", "6", "128", "many"} {
		out, err := c.Command(t, opts, "projections", "partitions", bad).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "1 to 64") {
			t.Errorf("partitions %s: %v\n%s", bad, err, out)
		}
	}
	if out, err := c.Command(t, opts, "projections", "partitions").CombinedOutput(); err != nil || !strings.Contains(string(out), "8 partitions") {
		t.Fatalf("auditd projections partitions: %v\n%s", err, out)
	}
}
