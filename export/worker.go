package export

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/export/ndjson"
	"github.com/auditlog/auditlog/natsx"
)

// Source streams an organization's events matching a filter, in list order,
// from one consistent snapshot; total is called first with their number.
// With records set the events carry only their ID, LeafIndex and Record,
// what a proved file is made of; otherwise their fields, without leaf and
// record.
type Source interface {
	Export(ctx context.Context, org string, f domain.Filter, records bool, total func(int64), fn func(*domain.Event) error) error
}

// Worker defaults.
const (
	DefaultConcurrency = 2
	DefaultMaxAttempts = 3
	// ConsumerName is the durable consumer all instances share, so each
	// queued job runs on exactly one of them at a time.
	ConsumerName = "export-workers"
	// chunkSize matches the object store's chunk, so each write to the
	// pipe becomes one chunk message.
	chunkSize = 128 << 10
)

var (
	// errCancelled stops a run whose job was cancelled meanwhile.
	errCancelled = errors.New("export cancelled")
	// errUploadEnded stops a writer whose upload is over.
	errUploadEnded = errors.New("upload ended")
)

// Worker runs queued export jobs until its context ends. Any number of
// instances may run one: the work-queue consumer hands each job to one.
type Worker struct {
	JS     jetstream.JetStream
	Jobs   *Jobs
	Source Source
	// Concurrency is how many jobs this instance encodes at once. Up to
	// max(Concurrency, 2) jobs hold a Postgres snapshot at once, at most
	// all but one of them of one organization, and they take turns of
	// turnRows rows, least recently served organization first (fairShare).
	Concurrency int
	// AckWait is how long a run may go without a heartbeat before the job is
	// handed to another instance; heartbeats go every third of it.
	AckWait time.Duration
	// MaxAttempts bounds the runs of one job; a job interrupted that often
	// is marked FAILED instead of being retried.
	MaxAttempts int
	// FileTTL is how long the object store keeps a file.
	FileTTL time.Duration
	// Proofs, when set, makes NDJSON exports prove themselves: a signed
	// checkpoint, a leaf index per event, one range proof for the file, a
	// signed manifest (ndjson.ProvedEncoder).
	Proofs ndjson.Prover
	// ProgressEvery is how often a run publishes its progress.
	ProgressEvery time.Duration
	Log           zerolog.Logger
	Now           func() time.Time

	share *fairShare
}

func (w *Worker) defaults() {
	if w.Concurrency <= 0 {
		w.Concurrency = DefaultConcurrency
	}
	if w.AckWait <= 0 {
		w.AckWait = natsx.DefaultExportAckWait
	}
	if w.MaxAttempts <= 0 {
		w.MaxAttempts = DefaultMaxAttempts
	}
	if w.FileTTL <= 0 {
		w.FileTTL = natsx.DefaultExportTTL
	}
	if w.ProgressEvery <= 0 {
		w.ProgressEvery = 500 * time.Millisecond
	}
	if w.Now == nil {
		w.Now = time.Now
	}
}

// Run consumes the work queue until ctx ends. A job running at that moment
// goes back to the queue for another instance.
func (w *Worker) Run(ctx context.Context) error {
	w.defaults()
	cons, err := w.JS.CreateOrUpdateConsumer(ctx, natsx.ExportQueueStream, ConsumerConfig(w.AckWait, w.MaxAttempts))
	if err != nil {
		return fmt.Errorf("export consumer: %w", err)
	}
	running := max(w.Concurrency, 2)
	w.share = newFairShare(w.Concurrency, running, running-1)
	// Enough jobs in hand that, with every job of one organization fetched
	// first, another organization's job is fetched too and admitted.
	var wg sync.WaitGroup
	for range running + MaxActivePerOrg - 1 {
		wg.Go(func() { w.loop(ctx, cons) })
	}
	wg.Wait()
	return nil
}

// ConsumerConfig is the work-queue consumer every instance shares.
func ConsumerConfig(ackWait time.Duration, maxAttempts int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:   ConsumerName,
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   ackWait,
		// One delivery more than the attempts: the last one only marks
		// the job FAILED, so no job is left RUNNING by a dead instance.
		MaxDeliver:    maxAttempts + 1,
		MaxAckPending: 1000,
	}
}

func (w *Worker) loop(ctx context.Context, cons jetstream.Consumer) {
	for ctx.Err() == nil {
		batch, err := cons.Fetch(1, jetstream.FetchContext(ctx))
		if err != nil {
			if ctx.Err() == nil {
				w.Log.Warn().Err(err).Msg("fetch export job")
				sleep(ctx, time.Second)
			}
			continue
		}
		for msg := range batch.Messages() {
			w.handle(ctx, msg)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// handle runs one delivery of a job and settles the message.
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg) {
	// Settling must happen even when ctx has just ended.
	bg := context.WithoutCancel(ctx)
	var q queued
	if err := json.Unmarshal(msg.Data(), &q); err != nil || validID(q.ID) != nil {
		w.Log.Error().Err(err).Msg("undecodable export job message dropped")
		_ = msg.Term()
		return
	}
	log := w.Log.With().Str("export_id", q.ID).Str("org_id", q.OrgID).Logger()
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Nak()
		return
	}
	if int(md.NumDelivered) > w.MaxAttempts {
		reason := fmt.Sprintf("the export was interrupted %d times; start it again", w.MaxAttempts)
		w.settle(bg, log, msg, q, func(j *domain.ExportJob) error { return j.Fail(reason, w.Now()) }, msg.Term)
		return
	}
	job, err := w.Jobs.update(ctx, q.OrgID, q.ID, func(j *domain.ExportJob) error { return j.Start(w.Now()) })
	switch {
	case errors.Is(err, domain.ErrNotFound) || errors.Is(err, domain.ErrConflict):
		_ = msg.Ack() // expired, or cancelled while queued: nothing to run
		return
	case err != nil:
		log.Error().Err(err).Msg("start export")
		_ = msg.NakWithDelay(time.Second)
		return
	}

	// Which instance ran which attempt is what an operator asks after a
	// takeover.
	log.Info().Int("attempt", job.Attempts).Msg("export started")
	rows, size, err := w.runWithHeartbeat(ctx, msg, job)
	switch {
	case err == nil:
		now := w.Now()
		latest, err := w.Jobs.update(bg, q.OrgID, q.ID, func(j *domain.ExportJob) error {
			return j.Succeed(rows, size, now, now.Add(w.FileTTL))
		})
		if errors.Is(err, domain.ErrConflict) && latest != nil && latest.Status == domain.ExportCancelled {
			w.deleteFile(bg, job) // cancelled at the last moment
		} else if err != nil && !errors.Is(err, domain.ErrConflict) {
			log.Error().Err(err).Msg("record finished export")
			_ = msg.NakWithDelay(time.Second)
			return
		}
		log.Info().Int64("rows", rows).Int64("bytes", size).Msg("export finished")
		_ = msg.Ack()
	case errors.Is(err, errCancelled):
		w.deleteFile(bg, job)
		_ = msg.Ack()
	case ctx.Err() != nil:
		// This instance is stopping: hand the job to another one now.
		w.settle(bg, log, msg, q, func(j *domain.ExportJob) error {
			return j.Requeue("the instance running the export stopped; it will be retried")
		}, func() error { return msg.NakWithDelay(handBackDelay) })
	case job.Attempts < w.MaxAttempts:
		log.Error().Err(err).Int("attempt", job.Attempts).Msg("export failed; retrying")
		w.settle(bg, log, msg, q, func(j *domain.ExportJob) error {
			return j.Requeue(fmt.Sprintf("attempt %d failed; retrying", j.Attempts))
		}, func() error { return msg.NakWithDelay(time.Duration(job.Attempts) * 2 * time.Second) })
	default:
		log.Error().Err(err).Int("attempt", job.Attempts).Msg("export failed")
		w.settle(bg, log, msg, q, func(j *domain.ExportJob) error {
			return j.Fail(fmt.Sprintf("the export failed %d times; the server log has the cause under export_id %s", j.Attempts, j.ID), w.Now())
		}, msg.Term)
	}
}

// handBackDelay is how long a job a stopping instance hands back waits
// before JetStream delivers it again. At once, it could go to a pull
// request this instance's other fetchers left on the server while they
// were stopping (nats.go closes a fetch before it unsubscribes): a request
// nobody reads any more, so the job would wait out the whole ack wait. By
// then the server has dropped those requests, which have lost interest.
const handBackDelay = 500 * time.Millisecond

// settle records a change of the job, then acknowledges the message the way
// ack says. A job that became final meanwhile is acknowledged as it is.
func (w *Worker) settle(ctx context.Context, log zerolog.Logger, msg jetstream.Msg, q queued, change func(*domain.ExportJob) error, ack func() error) {
	_, err := w.Jobs.update(ctx, q.OrgID, q.ID, change)
	switch {
	case errors.Is(err, domain.ErrConflict) || errors.Is(err, domain.ErrNotFound):
		_ = msg.Term()
	case err != nil:
		log.Error().Err(err).Msg("update export job")
		_ = msg.NakWithDelay(time.Second)
	default:
		if err := ack(); err != nil {
			log.Warn().Err(err).Msg("settle export job message")
		}
	}
}

// runWithHeartbeat runs the job while telling JetStream it is in progress,
// so only a dead instance's job is handed over.
func (w *Worker) runWithHeartbeat(ctx context.Context, msg jetstream.Msg, job *domain.ExportJob) (int64, int64, error) {
	hctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		t := time.NewTicker(w.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return w.run(hctx, job)
}

// run writes the job's file: rows stream from Postgres through the encoder
// into a pipe the object store reads in chunks, so memory holds a chunk, not
// the file.
func (w *Worker) run(ctx context.Context, job *domain.ExportJob) (rows, size int64, err error) {
	files, err := w.JS.ObjectStore(ctx, natsx.ExportFilesBucket(job.Region))
	if err != nil {
		return 0, 0, fmt.Errorf("open export bucket: %w", err)
	}
	pr, pw := io.Pipe()
	var writeErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		writeErr = w.write(ctx, job, pw, &rows)
		// A failed write fails the upload, which then removes its chunks.
		pw.CloseWithError(writeErr)
	})
	info, putErr := files.Put(ctx, jetstream.ObjectMeta{
		Name:    job.ID,
		Headers: nats.Header{"Content-Type": []string{job.Format.ContentType()}},
	}, pr)
	pr.CloseWithError(errUploadEnded) // unblocks the writer if the upload gave up
	wg.Wait()
	if writeErr != nil && !errors.Is(writeErr, errUploadEnded) {
		return rows, 0, writeErr
	}
	if putErr != nil {
		return rows, 0, fmt.Errorf("store export file: %w", putErr)
	}
	return rows, int64(info.Size), nil
}

// write encodes the job's events into pw, publishing progress as it goes and
// stopping when the job is cancelled.
func (w *Worker) write(ctx context.Context, job *domain.ExportJob, pw io.Writer, rows *int64) error {
	buf := bufio.NewWriterSize(pw, chunkSize)
	var (
		enc    encoder
		proved *ndjson.ProvedEncoder
		err    error
	)
	if job.Format == domain.ExportNDJSON && w.Proofs != nil {
		proved, err = ndjson.NewProvedEncoder(ctx, buf, w.Proofs, job.OrgID, job.Filter)
		enc = proved
	} else {
		enc, err = newEncoder(job.Format, buf)
	}
	if err != nil {
		return err
	}
	last := time.Now()
	progress := func(change func(*domain.ExportJob)) error {
		_, err := w.Jobs.update(ctx, job.OrgID, job.ID, func(j *domain.ExportJob) error {
			if j.Status != domain.ExportRunning {
				return errCancelled
			}
			change(j)
			return nil
		})
		return err
	}
	// Wait for the organization's share before taking a snapshot, which
	// holds a Postgres connection until the file is written.
	if err := w.share.admit(ctx, job.OrgID); err != nil {
		return err
	}
	defer w.share.leave(job.OrgID)
	var seen int64
	inTurn := false
	defer func() {
		if inTurn {
			w.share.endTurn()
		}
	}()
	var total int64
	err = w.Source.Export(ctx, job.OrgID, job.Filter, proved != nil, func(n int64) { total = n }, func(e *domain.Event) error {
		if seen%turnRows == 0 {
			// Let a less recently served organization's job go first.
			if inTurn {
				inTurn = false
				w.share.endTurn()
			}
			if err := w.share.turn(ctx, job.OrgID); err != nil {
				return err
			}
			inTurn = true
		}
		seen++
		if proved != nil && !proved.Covers(e) {
			return nil // projected after the checkpoint the file proves against
		}
		if *rows == 0 {
			// The first row: publish the total so a UI can show progress.
			if err := progress(func(j *domain.ExportJob) { j.TotalRows = total }); err != nil {
				return err
			}
		}
		if err := enc.Encode(e); err != nil {
			return err
		}
		*rows++
		if time.Since(last) >= w.ProgressEvery {
			last = time.Now()
			n := *rows
			return progress(func(j *domain.ExportJob) { j.RowCount = n })
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := enc.Flush(); err != nil {
		return err
	}
	return buf.Flush()
}

func (w *Worker) deleteFile(ctx context.Context, job *domain.ExportJob) {
	files, err := w.JS.ObjectStore(ctx, natsx.ExportFilesBucket(job.Region))
	if err == nil {
		err = files.Delete(ctx, job.ID)
	}
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		w.Log.Warn().Err(err).Str("export_id", job.ID).Msg("delete export file")
	}
}
