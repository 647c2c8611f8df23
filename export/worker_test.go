package export_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/export"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
)

// enabledInUS is an organization's settings: opted in, in US.
type enabledInUS struct{}

func (enabledInUS) Get(_ context.Context, org string) (domain.Settings, error) {
	return domain.Settings{OrgID: org, Enabled: true, Region: domain.RegionUS}, nil
}

// source emits n events, calling before ahead of each; before may block or
// fail the run.
type source struct {
	n      int
	before func(ctx context.Context, i int) error
}

func (s source) Export(ctx context.Context, org string, _ domain.Filter, _ bool, total func(int64), fn func(*domain.Event) error) error {
	total(int64(s.n))
	for i := range s.n {
		if s.before != nil {
			if err := s.before(ctx, i); err != nil {
				return err
			}
		}
		e := &domain.Event{ID: string(rune('a' + i%26)), OrgID: org, Type: "USER_LOGOUT", Source: domain.SourcePlatform,
			Actor: domain.Actor{Kind: domain.ActorUser, ID: "u"}, OccurredAt: time.Now()}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

type rig struct {
	t    *testing.T
	js   jetstream.JetStream
	jobs *export.Jobs
	job  *domain.ExportJob
}

func newRig(t *testing.T) *rig {
	js := testenv.JetStream(t, natsx.Streams{})
	ctx := context.Background()
	jobs, err := export.NewJobs(ctx, js, enabledInUS{}, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	p := &domain.Principal{Kind: domain.PrincipalUser, Subject: "u", OrgID: "acme", Roles: []string{domain.RoleAdmin}}
	job, err := jobs.Start(ctx, p, domain.Filter{}, domain.ExportCSV)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, js: js, jobs: jobs, job: job}
}

// run runs a worker over src until stop is closed or the test ends.
func (r *rig) run(src export.Source, maxAttempts int, stop <-chan struct{}) <-chan struct{} {
	ctx, cancel := context.WithCancel(context.Background())
	r.t.Cleanup(cancel)
	go func() {
		<-stop
		cancel()
	}()
	done := make(chan struct{})
	w := &export.Worker{
		JS: r.js, Jobs: r.jobs, Source: src, Concurrency: 1, MaxAttempts: maxAttempts,
		// Long: a job must move on because it was handed back, not because
		// an acknowledgement timed out.
		AckWait:       30 * time.Second,
		ProgressEvery: time.Millisecond,
		Log:           zerolog.New(zerolog.NewTestWriter(r.t)).Level(zerolog.ErrorLevel),
	}
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			r.t.Error(err)
		}
	}()
	return done
}

// wait polls the job until ok says it is there.
func (r *rig) wait(what string, ok func(*domain.ExportJob) bool) *domain.ExportJob {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := r.jobs.Get(context.Background(), "acme", r.job.ID)
		if err != nil {
			r.t.Fatal(err)
		}
		if ok(j) {
			return j
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("job never became %s: %+v", what, j)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *rig) file() (string, error) {
	files, err := r.js.ObjectStore(context.Background(), natsx.ExportFilesBucket(domain.RegionUS))
	if err != nil {
		return "", err
	}
	obj, err := files.Get(context.Background(), r.job.ID)
	if err != nil {
		return "", err
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	return string(b), err
}

func TestWorkerHandsBackItsJobWhenStopped(t *testing.T) {
	r := newRig(t)
	started := make(chan struct{})
	blocking := source{n: 10, before: func(ctx context.Context, i int) error {
		if i == 1 {
			close(started)
			<-ctx.Done() // still running when the instance stops
			return ctx.Err()
		}
		return nil
	}}
	stop := make(chan struct{})
	done := r.run(blocking, 3, stop)
	<-started
	r.wait("RUNNING", func(j *domain.ExportJob) bool { return j.Status == domain.ExportRunning })
	close(stop)
	<-done

	j := r.wait("QUEUED", func(j *domain.ExportJob) bool { return true })
	if j.Status != domain.ExportQueued || !strings.Contains(j.Error, "stopped") || j.Attempts != 1 {
		t.Fatalf("after the stop: %+v", j)
	}
	if _, err := r.file(); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("a partial file was left: %v", err)
	}

	// Another instance takes it at once, well inside the ack wait.
	r.run(source{n: 3}, 3, make(chan struct{}))
	j = r.wait("SUCCEEDED", func(j *domain.ExportJob) bool { return j.Status.Final() })
	if j.Status != domain.ExportSucceeded || j.Attempts != 2 || j.RowCount != 3 || j.Error != "" {
		t.Fatalf("after the takeover: %+v", j)
	}
	body, err := r.file()
	if err != nil || strings.Count(body, "\n") != 4 {
		t.Fatalf("file %q: %v", body, err)
	}
}

func TestWorkerStopsACancelledJobAndDeletesItsFile(t *testing.T) {
	r := newRig(t)
	var cancelled atomic.Bool
	slow := source{n: 1_000_000, before: func(ctx context.Context, i int) error {
		if i == 100 {
			// Before the call: the waiter may see the job CANCELLED
			// before Cancel returns (it frees the job's slot after).
			cancelled.Store(true)
			if _, err := r.jobs.Cancel(ctx, "acme", r.job.ID); err != nil {
				return err
			}
		}
		if i > 100 {
			time.Sleep(100 * time.Microsecond)
		}
		return nil
	}}
	r.run(slow, 3, make(chan struct{}))
	j := r.wait("CANCELLED", func(j *domain.ExportJob) bool { return j.Status.Final() })
	if j.Status != domain.ExportCancelled || !cancelled.Load() {
		t.Fatalf("job: %+v", j)
	}
	// The run notices at its next progress update and removes the upload.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := r.file()
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cancelled export's file is still there: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if j, _ := r.jobs.Get(context.Background(), "acme", r.job.ID); j.Status != domain.ExportCancelled {
		t.Fatalf("a cancelled job came back as %s", j.Status)
	}
}

func TestWorkerRetriesThenFails(t *testing.T) {
	r := newRig(t)
	var runs atomic.Int32
	failing := source{n: 5, before: func(context.Context, int) error {
		runs.Add(1)
		return errors.New("connection reset by peer")
	}}
	r.run(failing, 2, make(chan struct{}))
	j := r.wait("FAILED", func(j *domain.ExportJob) bool { return j.Status.Final() })
	if j.Status != domain.ExportFailed || j.Attempts != 2 || runs.Load() != 2 ||
		!strings.Contains(j.Error, "failed 2 times") || strings.Contains(j.Error, "connection reset") {
		t.Fatalf("job after %d runs: %+v", runs.Load(), j)
	}
}
