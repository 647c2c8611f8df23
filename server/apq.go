package server

import (
	"context"
	"regexp"

	"github.com/99designs/gqlgen/graphql"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// apqHash is what a persisted query's key must look like: a SHA-256 in hex.
var apqHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

// apqCache is gqlgen's automatic persisted query cache over a JetStream
// key-value bucket (natsx.APQBucket), so every instance knows a query any
// of them was sent. The extension checks that a query hashes to its key
// before it adds it.
type apqCache struct {
	kv  jetstream.KeyValue
	max int
	log zerolog.Logger
}

var _ graphql.Cache[string] = apqCache{}

// Get returns the query stored under hash.
func (c apqCache) Get(ctx context.Context, hash string) (string, bool) {
	if !apqHash.MatchString(hash) {
		return "", false
	}
	e, err := c.kv.Get(ctx, hash)
	if err != nil {
		if err != jetstream.ErrKeyNotFound {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("persisted query lookup failed")
		}
		return "", false
	}
	return string(e.Value()), true
}

// Add stores query under hash. A query longer than the query size limit
// is not stored: the cost limit refuses it anyway.
func (c apqCache) Add(ctx context.Context, hash, query string) {
	if !apqHash.MatchString(hash) || len(query) > c.max {
		return
	}
	if _, err := c.kv.PutString(ctx, hash, query); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("persisted query not stored")
	}
}
