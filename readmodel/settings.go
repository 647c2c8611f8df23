package readmodel

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/auditlog/auditlog/projector"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/natsx"
)

// Appender appends an event to a region's stream, idempotently by event id.
type Appender interface {
	Append(ctx context.Context, region domain.Region, e *domain.Event) error
}

// legacyEventNamespace derived the ids of opt-in and opt-out audit events
// from the control stream's sequence, which every organization shares, so
// one organization could predict another's next ids. Changes written since
// carry the organization's own version (domain.SettingsEventID); the ids of
// older changes stay as they were, so a rebuild reproduces them.
var legacyEventNamespace = uuid.MustParse("6f1c3c52-3a43-4d5e-9a6b-8d1f0b2c7e10")

// SettingsEventID is the id of the audit event for change c, stored at
// control stream sequence seq.
func SettingsEventID(c domain.SettingsChange, seq uint64) string {
	if c.Version > 0 {
		return domain.SettingsEventID(c.OrgID, c.Version)
	}
	return uuid.NewSHA1(legacyEventNamespace, []byte("auditctl:"+strconv.FormatUint(seq, 10))).String()
}

// SettingsStore is the settings read model. Its projection also writes each
// change into the organization's own audit log, at least once.
type SettingsStore struct {
	pool     *pgxpool.Pool
	appender Appender
	log      zerolog.Logger
}

// NewSettingsStore returns the settings read model in pool's control schema.
func NewSettingsStore(pool *pgxpool.Pool, appender Appender, log zerolog.Logger) *SettingsStore {
	return &SettingsStore{pool: pool, appender: appender, log: log}
}

// Migrate applies the control migrations.
func (s *SettingsStore) Migrate(ctx context.Context) error {
	return Migrate(ctx, s.pool, ControlSchema, "control")
}

// Prepare reads the checkpoint.
func (s *SettingsStore) Prepare(ctx context.Context, conn *pgx.Conn) (uint64, error) {
	return readPosition(ctx, conn, ControlSchema, natsx.ControlStream)
}

// Position is the last control stream sequence the read model holds.
func (s *SettingsStore) Position(ctx context.Context) (uint64, error) {
	return readPosition(ctx, s.pool, ControlSchema, natsx.ControlStream)
}

// Apply publishes each change's audit event, then folds the batch into
// org_settings with the checkpoint. A crash between the two re-publishes
// events that JetStream and the events read model both de-duplicate.
func (s *SettingsStore) Apply(ctx context.Context, conn *pgx.Conn, batch []projector.Message) error {
	type row struct {
		change domain.SettingsChange
		seq    uint64
	}
	rows := make([]row, 0, len(batch))
	for _, m := range batch {
		var c domain.SettingsChange
		if err := json.Unmarshal(m.Data, &c); err != nil {
			return &projector.PoisonError{Seq: m.Seq, Err: fmt.Errorf("not a settings change: %w", err)}
		}
		if m.Subject != natsx.ControlSubject(c.OrgID) || !domain.ValidOrgID(c.OrgID) || !c.Region.Valid() {
			return &projector.PoisonError{Seq: m.Seq, Err: fmt.Errorf("settings change of org %q in region %q stored on subject %q", c.OrgID, c.Region, m.Subject)}
		}
		e := c.AuditEvent(SettingsEventID(c, m.Seq))
		if err := s.appender.Append(ctx, c.Region, &e); err != nil {
			return err
		}
		rows = append(rows, row{c, m.Seq})
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, r := range rows {
			actor, _ := json.Marshal(r.change.Actor)
			_, err := tx.Exec(ctx, `
				INSERT INTO control.org_settings (org_id, enabled, region, version, updated_at, updated_by)
				VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (org_id) DO UPDATE SET enabled = excluded.enabled, version = excluded.version,
					updated_at = excluded.updated_at, updated_by = excluded.updated_by
				WHERE org_settings.version < excluded.version`,
				r.change.OrgID, r.change.Type == domain.TypeAuditLogOptIn, string(r.change.Region),
				int64(r.seq), r.change.At, actor)
			if err != nil {
				return fmt.Errorf("upsert settings of %s: %w", r.change.OrgID, err)
			}
		}
		return writePositions(ctx, tx, ControlSchema, []string{natsx.ControlStream}, int64(batch[len(batch)-1].Seq), 0)
	})
}

// QuarantineCount counts the settings changes set aside.
func (s *SettingsStore) QuarantineCount(ctx context.Context) (int64, error) {
	return countQuarantined(ctx, s.pool, ControlSchema, natsx.ControlStream)
}

// Quarantine keeps m in the quarantine table and moves the checkpoint to it.
func (s *SettingsStore) Quarantine(ctx context.Context, conn *pgx.Conn, m projector.Message, reason error) error {
	return quarantine(ctx, conn, ControlSchema, natsx.ControlStream, []string{natsx.ControlStream}, 0, m, reason)
}

// Region reports where org's audit data lives, and false when the org never
// opted in. Queries use it to pick the region's store.
func (s *SettingsStore) Region(ctx context.Context, org string) (domain.Region, bool, error) {
	var r string
	err := s.pool.QueryRow(ctx, `SELECT region FROM control.org_settings WHERE org_id = $1`, org).Scan(&r)
	if err == pgx.ErrNoRows {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("region of %s: %w", org, err)
	}
	return domain.Region(r), true, nil
}
