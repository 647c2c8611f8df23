package server

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Limits of the integrity queries (verifyAuditLog, checkpoints, proofs) on
// one instance. They run on a pool of their own per database, so that a
// tenant's checks never hold the connections other tenants' reads need.
const (
	// integrityPoolConns is the size of each database's integrity pool.
	integrityPoolConns = 4
	// integrityRequests is how many requests of any organizations run
	// integrity work at once; each may hold two connections (a stream walk
	// reads rows while it looks up kept hashes), so twice this is the pool.
	integrityRequests = integrityPoolConns / 2
	// integrityPerOrg is how many requests of one organization run
	// integrity work at once: one tenant takes at most half of the pool.
	integrityPerOrg = 1
	// integrityApplicationName names the pool's sessions in
	// pg_stat_activity.
	integrityApplicationName = "auditd-integrity"
)

// DefaultCheckpointMinInterval is how often a read may issue a new signed
// checkpoint for one organization: within it, reads get the latest one.
const DefaultCheckpointMinInterval = 10 * time.Second

// openIntegrityPool opens the small pool integrity work of the database at
// url runs on. Every statement on it is bounded by statementTimeout, so a
// check cannot hold a connection past its request even if its context is
// somehow not cancelled.
func (s *Server) openIntegrityPool(ctx context.Context, url string, statementTimeout time.Duration) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres integrity pool: %w", err)
	}
	cfg.MaxConns = integrityPoolConns
	cfg.MinConns = 0
	rp := cfg.ConnConfig.RuntimeParams
	rp["application_name"] = integrityApplicationName
	rp["statement_timeout"] = strconv.FormatInt(statementTimeout.Milliseconds(), 10)
	rp["idle_in_transaction_session_timeout"] = strconv.FormatInt(statementTimeout.Milliseconds(), 10)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres integrity pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres integrity pool: %w", err)
	}
	// Not in s.pools: /readyz pings those, and a busy integrity pool
	// must not make the instance look unready.
	s.integrityPools = append(s.integrityPools, pool)
	return pool, nil
}
