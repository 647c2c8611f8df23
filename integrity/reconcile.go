package integrity

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/auditlog/auditlog/projector"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/readmodel"
	"github.com/auditlog/auditlog/retention"
)

// Reconciliation compares a regional stream with its read model message by
// message, up to the read model's checkpoint: every message the stream holds
// there must be an event row, a duplicate of one (the same org and id sent
// again), quarantined, or an event that retention removed with its month.
// Anything else is a gap: an acknowledged event the read model lost, which
// no lag metric shows. Under retention the stream no longer holds its
// oldest messages; rows older than the stream's first message cannot be
// compared with anything, and are neither counted nor reported.

// OrgReport counts one organization's messages and rows.
type OrgReport struct {
	// Messages is how many of the org's messages the stream holds up to
	// the checkpoint.
	Messages int64
	// Stored are the messages whose event row is theirs; Duplicates repeat
	// an event stored from an earlier message.
	Stored, Duplicates int64
	// Missing messages are gaps; Quarantined ones were set aside; Expired
	// ones are events retention removed with their month.
	Missing, Quarantined, Expired int64
	// Rows is how many rows the read model holds for the org from the
	// stream's first message up to the checkpoint; more rows than Stored
	// are rows no message explains.
	Rows int64
}

// EventRef names an event by its org and id, and the stream sequence it
// was stored at (for a row, the one it claims).
type EventRef struct {
	Seq   uint64
	OrgID string
	ID    string
}

// Report is what one reconciliation of a stream found.
type Report struct {
	Stream string
	// Through is the checkpoint compared up to; Checked the messages read.
	Through, Checked uint64
	// From is the first sequence the stream still holds: earlier messages
	// aged out (the stream's maximum age), and rows from them are not
	// compared.
	From uint64
	Orgs map[string]*OrgReport
	// Gaps are messages the read model should hold as events and does
	// not; Extra are rows no message of the stream accounts for.
	Gaps, Extra []EventRef
	Quarantined []readmodel.Quarantined
	// Unexplained counts rows that no message of the stream accounts for.
	Unexplained int64
	// Expired counts messages whose event retention removed from the read
	// model with its month: not gaps, and never repaired.
	Expired int64
	// Repaired counts the gaps that repair filled.
	Repaired int
	Took     time.Duration
}

// reconcileChunk is how many messages are compared with the read model in
// one query; it bounds the memory a reconciliation holds.
const reconcileChunk = 5000

// Reconcile compares the store's stream, read through js, with its read
// model and, when repair is set, re-applies each missing message without a
// rebuild. The result is also kept in the read model, where every
// instance's metrics read it.
func Reconcile(ctx context.Context, s *readmodel.EventStore, js jetstream.JetStream, repair bool) (*Report, error) {
	start := time.Now()
	through, err := s.Position(ctx)
	if err != nil {
		return nil, err
	}
	rep := &Report{Stream: s.Stream(), Through: through, Orgs: map[string]*OrgReport{}}
	retained, err := retention.ReadTotals(ctx, s)
	if err != nil {
		return nil, err
	}
	if rep.Quarantined, err = s.Quarantined(ctx); err != nil {
		return nil, err
	}
	quarantined := make(map[uint64]bool, len(rep.Quarantined))
	for _, q := range rep.Quarantined {
		quarantined[q.Seq] = true
		org := orgOfSubject(q.Subject)
		rep.org(org).Messages++
		rep.org(org).Quarantined++
	}
	if through > 0 {
		if err := walk(ctx, s, js, rep, func(stream jetstream.Stream, chunk []streamEvent) error {
			return compare(ctx, s, rep, chunk, quarantined, expired(s, stream, retained.Through))
		}); err != nil {
			return nil, err
		}
	}
	if err := countRows(ctx, s, rep); err != nil {
		return nil, err
	}
	for org, o := range rep.Orgs {
		if o.Rows > o.Stored {
			if err := findExtra(ctx, s, js, rep, org); err != nil {
				return nil, err
			}
		}
	}
	slices.SortFunc(rep.Extra, func(a, b EventRef) int { return cmp.Compare(a.Seq, b.Seq) })
	if repair && len(rep.Gaps) > 0 {
		if rep.Repaired, err = repairGaps(ctx, s, js, rep.Gaps); err != nil {
			return rep, err
		}
	}
	rep.Took = time.Since(start)
	return rep, saveReport(ctx, s, rep)
}

func (r *Report) org(id string) *OrgReport {
	o := r.Orgs[id]
	if o == nil {
		o = &OrgReport{}
		r.Orgs[id] = o
	}
	return o
}

// streamEvent is what reconciliation needs of a message: where it is, when
// it was stored and which event it says it is.
type streamEvent struct {
	seq     uint64
	stored  time.Time
	org, id string
}

// walk reads the stream from its first message through rep.Through,
// headers only, and hands it over in chunks. It sets rep.From.
func walk(ctx context.Context, s *readmodel.EventStore, js jetstream.JetStream, rep *Report, fn func(jetstream.Stream, []streamEvent) error) error {
	stream, err := js.Stream(ctx, s.Stream())
	if err != nil {
		return fmt.Errorf("reconcile %s: %w", s.Stream(), err)
	}
	state := stream.CachedInfo().State
	rep.From = state.FirstSeq
	through := rep.Through
	if state.Msgs == 0 || state.FirstSeq > through {
		return nil
	}
	through = min(through, state.LastSeq)
	iter, err := messages(ctx, s, stream, ">", true)
	if err != nil {
		return err
	}
	defer iter.Stop()
	chunk := make([]streamEvent, 0, reconcileChunk)
	for {
		nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := iter.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			return fmt.Errorf("reconcile %s: read stream: %w", s.Stream(), err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("reconcile %s: %w", s.Stream(), err)
		}
		seq := md.Sequence.Stream
		if seq > through {
			break
		}
		ev := streamEvent{seq: seq, stored: md.Timestamp, org: orgOfSubject(m.Subject())}
		if ev.id, err = eventID(ctx, s, stream, ev.org, seq, m.Headers().Get(jetstream.MsgIDHeader)); err != nil {
			return err
		}
		chunk = append(chunk, ev)
		if len(chunk) == reconcileChunk || seq == through {
			if err := fn(stream, chunk); err != nil {
				return err
			}
			chunk = chunk[:0]
		}
		if seq == through {
			break
		}
	}
	if len(chunk) > 0 {
		return fn(stream, chunk)
	}
	return nil
}

// messages reads the messages of stream on subject from the first; headers
// only when the caller needs their sequence, subject and id, not their body.
func messages(ctx context.Context, s *readmodel.EventStore, stream jetstream.Stream, subject string, headersOnly bool) (jetstream.MessagesContext, error) {
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, HeadersOnly: headersOnly})
	if err != nil {
		return nil, fmt.Errorf("reconcile %s: %w", s.Stream(), err)
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(reconcileChunk))
	if err != nil {
		return nil, fmt.Errorf("reconcile %s: %w", s.Stream(), err)
	}
	return iter, nil
}

// eventID is the event id of a message: its de-duplication id, which is
// "<org>:<id>" (or the bare id in messages from before identity was per
// org), else what its body says.
func eventID(ctx context.Context, s *readmodel.EventStore, stream jetstream.Stream, org string, seq uint64, msgID string) (string, error) {
	if id, ok := strings.CutPrefix(msgID, org+":"); ok {
		return id, nil
	}
	if msgID != "" && !strings.Contains(msgID, ":") {
		return msgID, nil
	}
	raw, err := stream.GetMsg(ctx, seq)
	if err != nil {
		return "", fmt.Errorf("reconcile %s: read message %d: %w", s.Stream(), seq, err)
	}
	var e struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw.Data, &e) // an undecodable message has no id: it is missing unless quarantined
	return e.ID, nil
}

// orgOfSubject is the org token of audit.<region>.<org>.<source>.<type>.
func orgOfSubject(subject string) string {
	parts := strings.Split(subject, ".")
	if len(parts) < 3 {
		return ""
	}
	return parts[2]
}

// expired reports whether the event of a message is one retention removed:
// it occurred before through, the end of the latest month dropped, before
// which every month is gone. An event occurs at most domain.MaxFutureSkewLimit
// after it is stored, so a message stored well before through needs no
// look at its body; only recent messages of old events (backfills) are read.
func expired(s *readmodel.EventStore, stream jetstream.Stream, through time.Time) func(context.Context, streamEvent) (bool, error) {
	return func(ctx context.Context, e streamEvent) (bool, error) {
		switch {
		case through.IsZero():
			return false, nil
		case e.stored.Add(domain.MaxFutureSkewLimit).Before(through):
			return true, nil
		}
		raw, err := stream.GetMsg(ctx, e.seq)
		if err != nil {
			return false, fmt.Errorf("reconcile %s: read message %d: %w", s.Stream(), e.seq, err)
		}
		var ev struct {
			OccurredAt time.Time `json:"occurredAt"`
		}
		if json.Unmarshal(raw.Data, &ev) != nil || ev.OccurredAt.IsZero() {
			return false, nil
		}
		return ev.OccurredAt.Before(through), nil
	}
}

// compare looks up the events of chunk in the read model: each is stored
// from its own message, from an earlier one (a duplicate), removed by
// retention, or missing.
func compare(ctx context.Context, s *readmodel.EventStore, rep *Report, chunk []streamEvent, quarantined map[uint64]bool,
	expired func(context.Context, streamEvent) (bool, error)) error {
	seqs, orgs, ids := make([]int64, 0, len(chunk)), make([]string, 0, len(chunk)), make([]string, 0, len(chunk))
	bySeq := make(map[uint64]streamEvent, len(chunk))
	for _, e := range chunk {
		if quarantined[e.seq] {
			continue
		}
		seqs, orgs, ids = append(seqs, int64(e.seq)), append(orgs, e.org), append(ids, e.id)
		bySeq[e.seq] = e
	}
	rows, err := s.Pool().Query(ctx, fmt.Sprintf(`
		SELECT u.seq, u.org, u.id, e.stream_seq
		FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(seq, org, id)
		LEFT JOIN %[1]s.event_ids i ON i.org_id = u.org AND i.id = u.id
		LEFT JOIN %[1]s.events e ON e.org_id = i.org_id AND e.occurred_at = i.occurred_at AND e.id = i.id`, s.Schema()),
		seqs, orgs, ids)
	if err != nil {
		return fmt.Errorf("reconcile %s: %w", s.Stream(), err)
	}
	var (
		seq     int64
		org     string
		id      string
		stored  *int64
		missing []EventRef
	)
	_, err = pgx.ForEachRow(rows, []any{&seq, &org, &id, &stored}, func() error {
		o := rep.org(org)
		o.Messages++
		rep.Checked++
		switch {
		case stored == nil:
			missing = append(missing, EventRef{Seq: uint64(seq), OrgID: org, ID: id})
		case *stored == seq:
			o.Stored++
		default:
			o.Duplicates++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reconcile %s: %w", s.Stream(), err)
	}
	for _, m := range missing {
		gone, err := expired(ctx, bySeq[m.Seq])
		if err != nil {
			return err
		}
		o := rep.org(m.OrgID)
		if gone {
			o.Expired++
			rep.Expired++
			continue
		}
		o.Missing++
		rep.Gaps = append(rep.Gaps, m)
	}
	return nil
}

// countRows counts each org's rows from the stream's first message up to
// the checkpoint, so rows that no message explains show too. Rows from
// messages that aged out of the stream have nothing to be compared with.
func countRows(ctx context.Context, s *readmodel.EventStore, rep *Report) error {
	rows, err := s.Pool().Query(ctx, fmt.Sprintf(
		`SELECT org_id, count(*) FROM %s.events WHERE stream_seq >= $2 AND stream_seq <= $1 GROUP BY org_id`, s.Schema()),
		int64(rep.Through), int64(rep.From))
	if err != nil {
		return fmt.Errorf("reconcile %s: count rows: %w", s.Stream(), err)
	}
	var (
		org string
		n   int64
	)
	_, err = pgx.ForEachRow(rows, []any{&org, &n}, func() error {
		o := rep.org(org)
		o.Rows = n
		rep.Unexplained += max(0, n-o.Stored)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reconcile %s: count rows: %w", s.Stream(), err)
	}
	slices.SortFunc(rep.Gaps, func(a, b EventRef) int { return cmp.Compare(a.Seq, b.Seq) })
	return nil
}

// findExtra names the rows of org that no message accounts for: each of
// the org's rows from the stream's first message up to the checkpoint is
// matched with the org's messages,
// read again from the stream. It runs only for an org whose rows outnumber
// its stored messages, so its memory is one such org's rows.
func findExtra(ctx context.Context, s *readmodel.EventStore, js jetstream.JetStream, rep *Report, org string) error {
	rows, err := s.Pool().Query(ctx, fmt.Sprintf(
		`SELECT id, stream_seq FROM %s.events WHERE org_id = $1 AND stream_seq >= $3 AND stream_seq <= $2`, s.Schema()),
		org, int64(rep.Through), int64(rep.From))
	if err != nil {
		return fmt.Errorf("reconcile %s: rows of %s: %w", s.Stream(), org, err)
	}
	unmatched := map[[2]any]bool{}
	var (
		id  string
		seq int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &seq}, func() error {
		unmatched[[2]any{id, uint64(seq)}] = true
		return nil
	}); err != nil {
		return fmt.Errorf("reconcile %s: rows of %s: %w", s.Stream(), org, err)
	}
	err = walkOrg(ctx, s, js, org, rep.Through, true, func(stream jetstream.Stream, seq uint64, m jetstream.Msg) error {
		id, err := eventID(ctx, s, stream, org, seq, m.Headers().Get(jetstream.MsgIDHeader))
		if err != nil {
			return err
		}
		delete(unmatched, [2]any{id, seq})
		return nil
	})
	if err != nil {
		return fmt.Errorf("reconcile %s: %w", s.Stream(), err)
	}
	for k := range unmatched {
		rep.Extra = append(rep.Extra, EventRef{Seq: k[1].(uint64), OrgID: org, ID: k[0].(string)})
	}
	return nil
}

// repairGaps re-applies the messages of gaps to the read model, leaving the
// checkpoint alone: the rows are written as the projector would have, and
// an id claimed for a row that is gone is claimed again. A row that is gone
// was a leaf, and the tree still has it, so it gets its leaf index back.
func repairGaps(ctx context.Context, s *readmodel.EventStore, js jetstream.JetStream, gaps []EventRef) (int, error) {
	stream, err := js.Stream(ctx, s.Stream())
	if err != nil {
		return 0, fmt.Errorf("repair %s: %w", s.Stream(), err)
	}
	repaired := 0
	for chunk := range slices.Chunk(gaps, 500) {
		var rows [][]any
		for _, g := range chunk {
			raw, err := stream.GetMsg(ctx, g.Seq)
			if err != nil {
				return repaired, fmt.Errorf("repair %s: read message %d: %w", s.Stream(), g.Seq, err)
			}
			row, err := s.DecodeRow(projector.Message{Seq: g.Seq, Subject: raw.Subject, Data: raw.Data})
			if err != nil {
				return repaired, fmt.Errorf("repair %s: message %d: %w", s.Stream(), g.Seq, err)
			}
			rows = append(rows, row)
		}
		n, err := s.Restore(ctx, rows)
		repaired += n
		if err != nil {
			return repaired, fmt.Errorf("repair %s: %w", s.Stream(), err)
		}
	}
	return repaired, nil
}

// ReconcileStatus is the last reconciliation of a stream as the read model
// keeps it.
type ReconcileStatus struct {
	At      time.Time
	Through uint64
	// Found is how many gaps the run found; Gaps how many it left.
	Found, Gaps, Quarantined, Unexplained int64
}

func saveReport(ctx context.Context, s *readmodel.EventStore, rep *Report) error {
	_, err := s.Pool().Exec(ctx, fmt.Sprintf(`
		INSERT INTO %s.reconciliation (stream, finished_at, through, found, gaps, quarantined, unexplained)
		VALUES ($1, now(), $2, $3, $4, $5, $6)
		ON CONFLICT (stream) DO UPDATE SET finished_at = excluded.finished_at, through = excluded.through,
			found = excluded.found, gaps = excluded.gaps, quarantined = excluded.quarantined,
			unexplained = excluded.unexplained`, s.Schema()),
		s.Stream(), int64(rep.Through), int64(len(rep.Gaps)), int64(len(rep.Gaps)-rep.Repaired),
		int64(len(rep.Quarantined)), rep.Unexplained)
	if err != nil {
		return fmt.Errorf("reconcile %s: save result: %w", s.Stream(), err)
	}
	return nil
}

// LastReconcile is the store's last reconciliation, or nil when none ran.
func LastReconcile(ctx context.Context, s *readmodel.EventStore) (*ReconcileStatus, error) {
	var st ReconcileStatus
	var through int64
	err := s.Pool().QueryRow(ctx, fmt.Sprintf(
		`SELECT finished_at, through, found, gaps, quarantined, unexplained FROM %s.reconciliation WHERE stream = $1`, s.Schema()),
		s.Stream()).Scan(&st.At, &through, &st.Found, &st.Gaps, &st.Quarantined, &st.Unexplained)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("last reconcile %s: %w", s.Stream(), err)
	}
	st.Through = uint64(through)
	return &st, nil
}
