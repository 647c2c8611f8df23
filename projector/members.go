package projector

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// memberLockSpace is the first key of every membership lock, so a census
// reads only those.
const memberLockSpace = "auditd:members"

// Members is this instance's membership of the instances sharing one
// Postgres: a session advisory lock keyed by a random id. Postgres ends the
// session of an instance that dies, and with it the lock, so a census
// (pg_locks) counts exactly the instances alive. The session is also ended
// once it has been silent for the holder timeout (each census speaks on
// it), so a frozen instance (SIGSTOP, a dead network path) leaves the
// census, and its share goes to the others, within that bound.
type Members struct {
	pool *pgxpool.Pool
	// timeout is how long the membership session may be silent.
	timeout time.Duration

	mu   sync.Mutex
	conn *pgx.Conn
	id   uint32
}

// Join takes a membership lock on its own session, which Postgres ends
// once it has been silent for timeout (zero: DefaultHolderTimeout).
func Join(ctx context.Context, pool *pgxpool.Pool, timeout time.Duration) (*Members, error) {
	if timeout <= 0 {
		timeout = DefaultHolderTimeout
	}
	m := &Members{pool: pool, timeout: timeout}
	if err := m.join(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Members) join(ctx context.Context) error {
	pc, err := m.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	conn := pc.Hijack()
	for range 10 {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			conn.Close(ctx)
			return fmt.Errorf("join: %w", err)
		}
		id := binary.BigEndian.Uint32(b[:])
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext($1), $2::bigint::bit(32)::int)`, memberLockSpace, int64(id)).Scan(&ok); err != nil {
			conn.Close(ctx)
			return fmt.Errorf("join: %w", err)
		}
		if ok {
			if err := silenceTimeout(ctx, conn, m.timeout); err != nil {
				conn.Close(ctx)
				return fmt.Errorf("join: %w", err)
			}
			m.conn, m.id = conn, id
			return nil
		}
	}
	conn.Close(ctx)
	return fmt.Errorf("join: no free member id")
}

// Census is this instance's rank among the live instances, ordered by id,
// and how many there are. A membership whose session was lost (Postgres
// restarted) is taken again.
func (m *Members) Census(ctx context.Context) (rank, n int, err error) {
	self, ids, err := m.Alive(ctx)
	if err != nil {
		return 0, 0, err
	}
	i, _ := slices.BinarySearch(ids, self)
	return i, max(len(ids), 1), nil
}

// Alive is this instance's member id and the ids of every live instance,
// itself included, sorted. A membership whose session was lost (Postgres
// restarted, or silent past the holder timeout) is taken again, under a
// new id: what this instance held under the old one is another's to take.
func (m *Members) Alive(ctx context.Context) (self uint32, ids []uint32, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ids, err = m.ids(ctx); err != nil {
		return 0, nil, err
	}
	_, found := slices.BinarySearch(ids, m.id)
	// Speaking on the membership session keeps it from timing out, and
	// finds a session Postgres has ended.
	alive := m.conn != nil && !m.conn.IsClosed() && m.conn.Ping(ctx) == nil
	if !found || !alive {
		if m.conn != nil {
			m.conn.Close(ctx)
			m.conn = nil
		}
		if err := m.join(ctx); err != nil {
			return 0, nil, err
		}
		if ids, err = m.ids(ctx); err != nil {
			return 0, nil, err
		}
	}
	return m.id, ids, nil
}

// ids are the member ids of the live instances, sorted.
func (m *Members) ids(ctx context.Context) ([]uint32, error) {
	ids, err := lockedKeys(ctx, m.pool, memberLockSpace)
	if err != nil {
		return nil, fmt.Errorf("census: %w", err)
	}
	return ids, nil
}

// lockedKeys are the second keys of the granted two-key advisory locks whose
// first key is hashtext(space), in this database, sorted: the members of a
// census, or the slots some projector holds.
func lockedKeys(ctx context.Context, pool *pgxpool.Pool, space string) ([]uint32, error) {
	rows, err := pool.Query(ctx, `
		SELECT objid::bigint FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 2
		  AND classid = hashtext($1)::bigint::bit(32)::bigint::oid
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		ORDER BY objid`, space)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (uint32, error) {
		var key int64
		err := row.Scan(&key)
		return uint32(key), err
	})
}

// Leave ends the membership.
func (m *Members) Leave(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn != nil {
		m.conn.Close(ctx)
		m.conn = nil
	}
}
