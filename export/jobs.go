// Package export runs export jobs: it keeps their state in a JetStream
// key-value bucket, queues them on a work-queue stream any instance can
// consume, streams the matching events from Postgres into a CSV or NDJSON
// file in the region's Object Store bucket, and serves the file.
package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/ingest"
	"github.com/auditlog/auditlog/leases"
	"github.com/auditlog/auditlog/natsx"
)

// Limits on export jobs.
const (
	// MaxActivePerOrg bounds the queued and running jobs of one
	// organization, across every instance: each such job holds a slot of
	// the leases bucket (see Start).
	MaxActivePerOrg = 3
	// MaxListed bounds a listing of an organization's jobs.
	MaxListed = 100
	// casRetries bounds optimistic-concurrency retries of one job update.
	casRetries = 10
)

// SettingsReader reads an organization's settings, for its region.
type SettingsReader interface {
	Get(ctx context.Context, org string) (domain.Settings, error)
}

// OwnRecorder records the audit log's events about itself.
type OwnRecorder interface {
	RecordOwn(ctx context.Context, e *domain.Event) (ingest.Status, error)
}

// Jobs creates, reads, changes and watches export jobs.
type Jobs struct {
	js       jetstream.JetStream
	kv       jetstream.KeyValue
	slots    *leases.Bucket
	settings SettingsReader
	own      OwnRecorder
	now      func() time.Time
}

// NewJobs opens the job bucket, which natsx.Streams.Ensure declared. own
// records each started export in the organization's log; nil records none.
func NewJobs(ctx context.Context, js jetstream.JetStream, settings SettingsReader, own OwnRecorder, now func() time.Time) (*Jobs, error) {
	kv, err := js.KeyValue(ctx, natsx.ExportJobsBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", natsx.ExportJobsBucket, err)
	}
	slots := leases.New(js, natsx.LeasesBucket, 0)
	return &Jobs{js: js, kv: kv, slots: slots, settings: settings, own: own, now: now}, nil
}

// queued is the work-queue message of a job.
type queued struct {
	OrgID string `json:"orgId"`
	ID    string `json:"id"`
}

// Start queues an export of the caller's organization. The export is
// recorded in the organization's own log before it is queued: a file of the
// log never leaves without a trace.
//
// At most MaxActivePerOrg jobs of an organization are queued or running,
// across every instance: a job claims one of the organization's slots in
// the leases bucket (export.<org>.<n>, holding the job id, with no TTL,
// since the job outlives the instance that started it) and keeps it until
// it is final. JetStream creates a slot's key only if it does not exist, so
// concurrent starts on any instances never take more slots than there are.
// Whoever makes a job final frees its slot; if that fails or the instance
// dies first, the next start that finds every slot taken frees the slots
// whose job is final or gone (expired with the job bucket's TTL).
func (j *Jobs) Start(ctx context.Context, p *domain.Principal, f domain.Filter, format domain.ExportFormat) (*domain.ExportJob, error) {
	s, err := j.settings.Get(ctx, p.OrgID)
	if err != nil {
		return nil, err
	}
	job, err := domain.NewExportJob(ulid.Make().String(), p, s.Region, f, format, j.now())
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(job)
	if err != nil {
		return nil, err
	}
	// The job is written before it claims a slot, so a slot always names a
	// job that exists: a slot whose job is missing can be reclaimed at once.
	key := natsx.ExportJobKey(job.OrgID, job.ID)
	if _, err := j.kv.Create(ctx, key, data); err != nil {
		return nil, fmt.Errorf("create export job: %w", err)
	}
	if err := j.claimSlot(ctx, job); err != nil {
		// Never queued nor recorded: withdraw it, so it is not listed.
		_ = j.kv.Purge(context.WithoutCancel(ctx), key)
		return nil, err
	}
	if err := j.recordStart(ctx, job); err != nil {
		_, _ = j.update(context.WithoutCancel(ctx), job.OrgID, job.ID, func(x *domain.ExportJob) error {
			return x.Fail("the export could not be recorded in the audit log, so it was not started", j.now())
		})
		return nil, err
	}
	msg := &nats.Msg{Subject: natsx.ExportQueueSubject(job.Region), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, job.ID)
	if msg.Data, err = json.Marshal(queued{OrgID: job.OrgID, ID: job.ID}); err != nil {
		return nil, err
	}
	if _, err := j.js.PublishMsg(ctx, msg); err != nil {
		// A job no worker will see must not hold its slot until it expires.
		_, _ = j.update(context.WithoutCancel(ctx), job.OrgID, job.ID, func(x *domain.ExportJob) error {
			return x.Fail("the export could not be queued, so it was not started", j.now())
		})
		return nil, fmt.Errorf("queue export job: %w", err)
	}
	return job, nil
}

// slotGroup is the leases group of org's active exports.
func slotGroup(org string) string { return "export." + org }

// claimSlot takes one of the organization's MaxActivePerOrg slots for job,
// freeing first the slots whose job is final or gone when all are taken.
func (j *Jobs) claimSlot(ctx context.Context, job *domain.ExportJob) error {
	over := func(ctx context.Context, id string) (bool, error) {
		if validID(id) != nil {
			return true, nil // no job of this package's making
		}
		x, err := j.Get(ctx, job.OrgID, id)
		if errors.Is(err, domain.ErrNotFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		return x.Status.Final(), nil
	}
	err := j.slots.Claim(ctx, slotGroup(job.OrgID), MaxActivePerOrg, job.ID, over)
	switch {
	case errors.Is(err, leases.ErrFull):
		return domain.Errorf(domain.CodeRateLimited, "",
			"%d exports of this organization are already queued or running; wait for one to finish or cancel it", MaxActivePerOrg)
	case err != nil:
		// Without the shared count the limit cannot be kept: refuse rather
		// than start one more.
		return domain.Unavailable("exports cannot be counted just now; try again", err)
	}
	return nil
}

// freeSlot gives the slot of a job that became final back to its
// organization. A slot left behind (NATS unreachable just now) is freed by
// the next start that needs it, so the error is only a delay.
func (j *Jobs) freeSlot(ctx context.Context, job *domain.ExportJob) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = j.slots.Free(ctx, slotGroup(job.OrgID), job.ID)
}

func (j *Jobs) recordStart(ctx context.Context, job *domain.ExportJob) error {
	if j.own == nil {
		return nil
	}
	filter, err := job.Filter.Text()
	if err != nil {
		return err
	}
	details, err := json.Marshal(map[string]string{"exportId": job.ID, "format": string(job.Format), "filter": filter})
	if err != nil {
		return err
	}
	_, err = j.own.RecordOwn(ctx, &domain.Event{
		ID: job.ID, OrgID: job.OrgID, Source: domain.SourcePlatform, Type: domain.TypeAuditLogExported,
		OccurredAt: job.CreatedAt, Actor: job.CreatedBy,
		Target:  &domain.Target{Kind: "AUDIT_EXPORT", ID: job.ID},
		Details: details,
	})
	if err != nil {
		return fmt.Errorf("record export: %w", err)
	}
	return nil
}

// validID guards the key space: job ids are ULIDs this package made.
func validID(id string) error {
	if _, err := ulid.ParseStrict(id); err != nil {
		return domain.BadInput("id", "is not an export id")
	}
	return nil
}

// Get returns org's job id, or NOT_FOUND. Jobs of other organizations are
// under other keys, so they are never found.
func (j *Jobs) Get(ctx context.Context, org, id string) (*domain.ExportJob, error) {
	job, _, err := j.get(ctx, org, id)
	return job, err
}

func (j *Jobs) get(ctx context.Context, org, id string) (*domain.ExportJob, uint64, error) {
	if err := validID(id); err != nil {
		return nil, 0, err
	}
	entry, err := j.kv.Get(ctx, natsx.ExportJobKey(org, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, domain.Errorf(domain.CodeNotFound, "id", "no export %s in this organization", id)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read export job: %w", err)
	}
	job, err := decodeJob(entry.Value())
	if err != nil {
		return nil, 0, err
	}
	return job, entry.Revision(), nil
}

func decodeJob(data []byte) (*domain.ExportJob, error) {
	var job domain.ExportJob
	if err := json.Unmarshal(data, &job); err != nil {
		return nil, fmt.Errorf("decode export job: %w", err)
	}
	return &job, nil
}

// List returns org's most recent jobs, newest first, at most limit.
func (j *Jobs) List(ctx context.Context, org string, limit int) ([]*domain.ExportJob, error) {
	limit = min(max(limit, 0), MaxListed)
	lister, err := j.kv.ListKeysFiltered(ctx, natsx.ExportJobKey(org, "*"))
	if err != nil {
		return nil, fmt.Errorf("list export jobs: %w", err)
	}
	var ids []string
	for key := range lister.Keys() {
		ids = append(ids, key[len(org)+1:])
	}
	// Ids are ULIDs: their order is their creation order.
	slices.Sort(ids)
	slices.Reverse(ids)
	out := make([]*domain.ExportJob, 0, min(len(ids), limit))
	for _, id := range ids {
		if len(out) == limit {
			break
		}
		job, err := j.Get(ctx, org, id)
		if errors.Is(err, domain.ErrNotFound) {
			continue // expired between listing and reading
		}
		if err != nil {
			return nil, err
		}
		out = append(out, job)
	}
	return out, nil
}

// Cancel stops org's job id; a job already finished cannot be cancelled.
func (j *Jobs) Cancel(ctx context.Context, org, id string) (*domain.ExportJob, error) {
	return j.update(ctx, org, id, func(job *domain.ExportJob) error { return job.Cancel(j.now()) })
}

// update applies change to the job with optimistic concurrency, retrying
// when another writer got there first; change sees the latest state.
func (j *Jobs) update(ctx context.Context, org, id string, change func(*domain.ExportJob) error) (*domain.ExportJob, error) {
	for range casRetries {
		job, rev, err := j.get(ctx, org, id)
		if err != nil {
			return nil, err
		}
		if err := change(job); err != nil {
			return job, err
		}
		data, err := json.Marshal(job)
		if err != nil {
			return nil, err
		}
		_, err = j.kv.Update(ctx, natsx.ExportJobKey(org, id), data, rev)
		if err == nil {
			if job.Status.Final() {
				j.freeSlot(ctx, job)
			}
			return job, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("update export job: %w", err)
		}
	}
	return nil, domain.Errorf(domain.CodeConflict, "", "export %s is changing too often; try again", id)
}

// Watch sends org's job id now and after every change, and closes the
// channel once the job is final or ctx ends.
func (j *Jobs) Watch(ctx context.Context, org, id string) (<-chan *domain.ExportJob, error) {
	if _, err := j.Get(ctx, org, id); err != nil {
		return nil, err
	}
	w, err := j.kv.Watch(ctx, natsx.ExportJobKey(org, id))
	if err != nil {
		return nil, fmt.Errorf("watch export job: %w", err)
	}
	out := make(chan *domain.ExportJob)
	go func() {
		defer close(out)
		defer w.Stop() //nolint:errcheck // nothing to do about it
		for {
			var entry jetstream.KeyValueEntry
			var ok bool
			select {
			case <-ctx.Done():
				return
			case entry, ok = <-w.Updates():
			}
			if !ok {
				return
			}
			if entry == nil {
				continue // the end of the initial values
			}
			if entry.Operation() != jetstream.KeyValuePut {
				return // deleted or expired
			}
			job, err := decodeJob(entry.Value())
			if err != nil {
				return
			}
			select {
			case out <- job:
			case <-ctx.Done():
				return
			}
			if job.Status.Final() {
				return
			}
		}
	}()
	return out, nil
}
