package gqlguard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/99designs/gqlgen/graphql"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/natsx"
)

// apqHash is what a persisted query's key must look like: a SHA-256 in hex.
var apqHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Codes of persisted query answers. PERSISTED_QUERY_NOT_FOUND is Apollo's
// (the client sends the text again); PERSISTED_QUERY_STORE_FULL says the
// shared bucket is full, so the client should send the text without the
// extension until queries expire.
const (
	codePersistedQueryNotFound  domain.Code = "PERSISTED_QUERY_NOT_FOUND"
	codePersistedQueryStoreFull domain.Code = "PERSISTED_QUERY_STORE_FULL"
)

// QueryStore is where persisted queries are kept, by hash: the part of a
// JetStream key-value bucket (natsx.APQBucket) that PersistedQueries uses.
type QueryStore interface {
	Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error)
	PutString(ctx context.Context, key, value string) (uint64, error)
}

// RefusalCounter counts persisted queries refused or not stored, by reason:
// anonymous (run but not stored), too_large, full, unavailable.
type RefusalCounter interface {
	PersistedRefused(reason string)
}

// PersistedQueries is Apollo's automatic persisted query protocol (version
// 1) over a JetStream key-value bucket (natsx.APQBucket), so every instance
// knows a query any of them stored. Anyone may run a stored query by its
// hash (it still needs the roles its fields ask for); only a caller with a
// valid token may store one, so a stranger cannot write to JetStream. An
// anonymous query sent with its hash runs as plain text and is not stored.
// It is a gqlgen handler extension; build it with NewPersistedQueries.
type PersistedQueries struct {
	kv      QueryStore
	max     int
	refused RefusalCounter
}

// NewPersistedQueries keeps queries in kv, stores none longer than
// maxBytes, and counts refusals in refused.
func NewPersistedQueries(kv QueryStore, maxBytes int, refused RefusalCounter) PersistedQueries {
	return PersistedQueries{kv: kv, max: maxBytes, refused: refused}
}

var _ interface {
	graphql.OperationParameterMutator
	graphql.HandlerExtension
} = PersistedQueries{}

// ExtensionName implements graphql.HandlerExtension.
func (PersistedQueries) ExtensionName() string { return "PersistedQueries" }

// Validate implements graphql.HandlerExtension.
func (p PersistedQueries) Validate(graphql.ExecutableSchema) error {
	if p.kv == nil {
		return errors.New("persisted queries need a key-value bucket")
	}
	return nil
}

// MutateOperationParameters looks up or stores the query of a request that
// carries the persistedQuery extension.
func (p PersistedQueries) MutateOperationParameters(ctx context.Context, raw *graphql.RawParams) (gerr *gqlerror.Error) {
	// Each refusal here is a request that never executes: its answer has
	// no data, which GraphQL over HTTP gives a 4xx status.
	defer func() {
		if gerr != nil {
			MarkNotExecuted(ctx)
		}
	}()
	ext, ok := raw.Extensions["persistedQuery"]
	if !ok || ext == nil {
		return nil
	}
	hash, err := persistedHash(ext)
	if err != nil {
		return codedError(domain.CodeBadUserInput, "%v", err)
	}
	if raw.Query == "" {
		e, err := p.kv.Get(ctx, hash)
		if err != nil {
			if !errors.Is(err, jetstream.ErrKeyNotFound) {
				zerolog.Ctx(ctx).Warn().Err(err).Msg("persisted query lookup failed")
			}
			return codedError(codePersistedQueryNotFound, "PersistedQueryNotFound")
		}
		raw.Query = string(e.Value())
		return nil
	}
	if sum := sha256.Sum256([]byte(raw.Query)); hex.EncodeToString(sum[:]) != hash {
		return codedError(domain.CodeBadUserInput, "the persistedQuery sha256Hash is not the SHA-256 of the query")
	}
	if _, err := auth.FromContext(ctx); err != nil {
		p.refused.PersistedRefused("anonymous")
		return nil // runs as plain text; never stored
	}
	if len(raw.Query) > p.max {
		p.refused.PersistedRefused("too_large")
		return codedError(domain.CodeQueryTooLarge,
			"a persisted query may be at most %d bytes, this one is %d; send it without the persistedQuery extension", p.max, len(raw.Query))
	}
	if _, err := p.kv.PutString(ctx, hash, raw.Query); err != nil {
		// A query already stored may be refused again by a full bucket;
		// it is there all the same.
		if e, gerr := p.kv.Get(ctx, hash); gerr == nil && string(e.Value()) == raw.Query {
			return nil
		}
		if storeFull(err) {
			p.refused.PersistedRefused("full")
			zerolog.Ctx(ctx).Warn().Err(err).Str("bucket", natsx.APQBucket).Msg("persisted query bucket is full")
			return codedError(codePersistedQueryStoreFull,
				"the persisted query store is full; send the query without the persistedQuery extension")
		}
		p.refused.PersistedRefused("unavailable")
		zerolog.Ctx(ctx).Warn().Err(err).Msg("persisted query not stored")
		return codedError(domain.CodeUnavailable, "the persisted query could not be stored; send the request again")
	}
	return nil
}

// persistedHash is the sha256Hash of a version 1 persistedQuery extension.
func persistedHash(ext any) (string, error) {
	b, err := json.Marshal(ext)
	if err != nil {
		return "", errors.New("the persistedQuery extension is not an object")
	}
	var pq struct {
		Version json.Number `json:"version"`
		Hash    string      `json:"sha256Hash"`
	}
	if err := json.Unmarshal(b, &pq); err != nil {
		return "", errors.New("the persistedQuery extension must be an object with version and sha256Hash")
	}
	if pq.Version != "1" {
		return "", fmt.Errorf("persistedQuery version %q is not supported; use 1", pq.Version.String())
	}
	if !apqHash.MatchString(pq.Hash) {
		return "", errors.New("persistedQuery sha256Hash must be 64 lowercase hex digits")
	}
	return pq.Hash, nil
}

// JetStream's error codes for a store that refused a message for lack of
// room: the stream's own limit (10077, "maximum bytes exceeded") or the
// account's or server's storage.
const (
	jsStoreFailed        = 10077
	jsResourcesExceeded  = 10002
	jsInsufficientRes    = 10023
	jsStorageUnavailable = 10047
)

// storeFull tells a refusal for lack of room from other failures.
func storeFull(err error) bool {
	var api *jetstream.APIError
	if !errors.As(err, &api) {
		return false
	}
	switch api.ErrorCode {
	case jsStoreFailed, jsResourcesExceeded, jsInsufficientRes, jsStorageUnavailable:
		return true
	}
	return false
}

func codedError(code domain.Code, format string, args ...any) *gqlerror.Error {
	err := gqlerror.Errorf(format, args...)
	err.Extensions = map[string]any{"code": string(code)}
	return err
}
