package readmodel

import (
	"context"
	"fmt"
	"strings"

	"github.com/auditlog/auditlog/projector"

	"github.com/jackc/pgx/v5"
)

// quarantine keeps message m of stream, which can never be applied, in
// schema's quarantine table with the reason, and moves the checkpoint past
// it, in one transaction: the projection goes on, and the message stays
// where an operator (and reconcile) can see it.
func quarantine(ctx context.Context, conn *pgx.Conn, schema, stream string, keys []string, epoch int64, m projector.Message, reason error) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, fmt.Sprintf(`
			INSERT INTO %s.quarantine (stream, seq, subject, data, error)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (stream, seq) DO NOTHING`, schema),
			stream, int64(m.Seq), Storable(m.Subject), m.Data, Storable(reason.Error()))
		if err != nil {
			return fmt.Errorf("quarantine: %w", err)
		}
		return writePositions(ctx, tx, schema, keys, int64(m.Seq), epoch)
	})
}

// Storable makes s fit a text column whatever it quotes of a hostile
// message: valid UTF-8 without NUL.
func Storable(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\\u0000")
}

// writePositions moves the checkpoints keys to seq; never back, since a
// partition may apply again what one of its slots already holds. With an
// epoch (a fenced partition), it moves only checkpoints that still carry
// that epoch, and fails with projector.ErrFenced, in the transaction of the rows they
// cover, when one does not.
func writePositions(ctx context.Context, tx pgx.Tx, schema string, keys []string, seq, epoch int64) error {
	if epoch != 0 {
		tag, err := tx.Exec(ctx, fmt.Sprintf(`
			UPDATE %[1]s.checkpoint SET seq = greatest(seq, $2) WHERE stream = ANY($1) AND epoch = $3`, schema), keys, seq, epoch)
		if err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		if tag.RowsAffected() != int64(len(keys)) {
			return projector.ErrFenced
		}
		return nil
	}
	_, err := tx.Exec(ctx, fmt.Sprintf(`
		INSERT INTO %[1]s.checkpoint (stream, seq) SELECT unnest($1::text[]), $2
		ON CONFLICT (stream) DO UPDATE SET seq = greatest(%[1]s.checkpoint.seq, excluded.seq)`, schema), keys, seq)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// Quarantined is one message set aside because it could never be applied.
type Quarantined struct {
	Stream  string
	Seq     uint64
	Subject string
	Data    []byte
	Error   string
}

// quarantinedIn lists the messages of stream quarantined in schema.
func quarantinedIn(ctx context.Context, q querier, schema, stream string) ([]Quarantined, error) {
	rows, err := q.Query(ctx, fmt.Sprintf(
		`SELECT stream, seq, subject, data, error FROM %s.quarantine WHERE stream = $1 ORDER BY seq`, schema), stream)
	if err != nil {
		return nil, fmt.Errorf("list quarantine: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Quarantined, error) {
		var x Quarantined
		var seq int64
		err := row.Scan(&x.Stream, &seq, &x.Subject, &x.Data, &x.Error)
		x.Seq = uint64(seq)
		return x, err
	})
}

// countQuarantined counts the messages of stream quarantined in schema.
func countQuarantined(ctx context.Context, q querier, schema, stream string) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s.quarantine WHERE stream = $1`, schema), stream).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count quarantine: %w", err)
	}
	return n, nil
}
