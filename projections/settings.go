package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

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

// settingsEventNamespace derives the ids of opt-in and opt-out audit events
// from their settings sequence, so re-publishing one is a duplicate.
var settingsEventNamespace = uuid.MustParse("6f1c3c52-3a43-4d5e-9a6b-8d1f0b2c7e10")

// SettingsEventID is the id of the audit event for settings change seq.
func SettingsEventID(seq uint64) string {
	return uuid.NewSHA1(settingsEventNamespace, []byte("auditctl:"+strconv.FormatUint(seq, 10))).String()
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
	return readCheckpoint(ctx, conn, ControlSchema, natsx.ControlStream)
}

// Checkpoint is the last control stream sequence the read model holds.
func (s *SettingsStore) Checkpoint(ctx context.Context) (uint64, error) {
	return readCheckpoint(ctx, s.pool, ControlSchema, natsx.ControlStream)
}

// Apply publishes each change's audit event, then folds the batch into
// org_settings with the checkpoint. A crash between the two re-publishes
// events that JetStream and the events read model both de-duplicate.
func (s *SettingsStore) Apply(ctx context.Context, conn *pgx.Conn, batch []Message) error {
	type row struct {
		change domain.SettingsChange
		seq    uint64
	}
	rows := make([]row, 0, len(batch))
	for _, m := range batch {
		var c domain.SettingsChange
		if err := json.Unmarshal(m.Data, &c); err != nil {
			s.log.Error().Err(err).Uint64("seq", m.Seq).Msg("undecodable settings change skipped")
			continue
		}
		e := c.AuditEvent(SettingsEventID(m.Seq))
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
		_, err := tx.Exec(ctx, `
			INSERT INTO control.checkpoint (stream, seq) VALUES ($1, $2)
			ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq`,
			natsx.ControlStream, int64(batch[len(batch)-1].Seq))
		return err
	})
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
