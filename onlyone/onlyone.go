// Package onlyone runs periodic work (checkpoints, retention,
// reconciliation) on one instance at a time, under a Postgres advisory lock.
package onlyone

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Run runs fn unless another instance holds lock, and says whether it
// ran. The lock is held on a connection of its own, not one of pool's:
// regions sharing a database run their tasks at once, and lock holders
// taking the pool's few connections would leave fn none to run with.
func Run(ctx context.Context, pool *pgxpool.Pool, lock string, fn func() error) (bool, error) {
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return false, fmt.Errorf("lock %s: %w", lock, err)
	}
	// Closing the session releases the lock.
	defer conn.Close(context.WithoutCancel(ctx))
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtext($1))", lock).Scan(&got); err != nil || !got {
		return false, err
	}
	return true, fn()
}
