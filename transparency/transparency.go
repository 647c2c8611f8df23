// Package transparency issues, keeps and proves the signed checkpoints of
// every organization's Merkle tree: checkpoints issued per organization
// with a rate limit on reads, synced from the checkpoint stream, proofs for
// the API and the export prover, and the gate that admits integrity work.
package transparency

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/auditlog/auditlog/onlyone"

	integ "github.com/auditlog/auditlog/integrity"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/export/ndjson"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/readmodel"
	"github.com/auditlog/auditlog/tiles"
	"github.com/auditlog/auditlog/treelog"
)

// SigningKeyFile is where development mode keeps its generated key.
const SigningKeyFile = "signing.key"

// DevSigningKey reads the signing key kept in dir, generating one (0600)
// the first time; created says it was just made. It is for development:
// a deployment configures its key (auditd keygen makes one).
func DevSigningKey(dir string) (skey string, created bool, err error) {
	path := filepath.Join(dir, SigningKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("signing key: %w", err)
	}
	skey, _, err = note.GenerateKey(rand.Reader, "auditlog-development")
	if err != nil {
		return "", false, fmt.Errorf("signing key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("signing key: %w", err)
	}
	if err := os.WriteFile(path, []byte(skey+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("signing key: %w", err)
	}
	return skey, true, nil
}

// Key is the log's signing key and the verifier key derived from it.
type Key struct {
	signer   note.Signer
	verifier string
}

// ParseKey reads a note signer key ("PRIVATE+KEY+…", auditd keygen).
func ParseKey(skey string) (Key, error) {
	signer, err := note.NewSigner(skey)
	if err != nil {
		return Key{}, errors.New("signing key: not a note signer key (make one with auditd keygen)")
	}
	v, err := verifierOf(skey)
	if err != nil {
		return Key{}, err
	}
	return Key{signer: signer, verifier: v}, nil
}

// Verifier is the note verifier key of the signer key.
func (k Key) Verifier() string { return k.verifier }

// Regions says which region keeps an organization's events.
type Regions interface {
	Region(ctx context.Context, org string) (domain.Region, bool, error)
}

// Config is what Trees needs: explicit dependencies, nothing shared.
type Config struct {
	Key Key
	JS  jetstream.JetStream
	// Regions finds an organization's region; Events are the regions' read
	// models, and Checks the same read models on the integrity pools, which
	// tenants' reads never wait for.
	Regions        Regions
	Events, Checks map[domain.Region]*readmodel.EventStore
	// Gate admits API requests to integrity work (on Checks).
	Gate *Gate
	// MinInterval is how often a read may issue a checkpoint of one
	// organization (0: always).
	MinInterval time.Duration
	Now         func() time.Time
	Log         zerolog.Logger
}

// Trees issues, keeps and proves the checkpoints of every organization's
// Merkle tree.
type Trees struct {
	cfg      Config
	signer   note.Signer
	verifier string
}

// New is the trees of cfg.
func New(cfg Config) *Trees {
	return &Trees{cfg: cfg, signer: cfg.Key.signer, verifier: cfg.Key.verifier}
}

// verifierOf derives the verifier key of a signer key: "PRIVATE+KEY+name+hash+key"
// holds the name and hash the verifier key repeats, and the Ed25519 seed.
func verifierOf(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("signing key: not a note signer key")
	}
	key, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(key) != 1+ed25519.SeedSize || key[0] != algEd25519 {
		return "", errors.New("signing key: not an Ed25519 note signer key")
	}
	pub := ed25519.NewKeyFromSeed(key[1:]).Public().(ed25519.PublicKey)
	return parts[2] + "+" + parts[3] + "+" + base64.StdEncoding.EncodeToString(append([]byte{algEd25519}, pub...)), nil
}

// algEd25519 is the note format's algorithm byte of Ed25519 keys.
const algEd25519 = 1

// VerifierKey is the note verifier key of every checkpoint.
func (t *Trees) VerifierKey() string { return t.verifier }

// open checks a checkpoint note against the log's own key.
func (t *Trees) open(msg string) (int64, tlog.Hash, error) {
	c, err := treelog.Open(msg, t.verifier)
	return c.Size, c.Hash, err
}

// store is the read model of org's region, or a NOT_FOUND-free empty
// answer's nil when the org never opted in.
func (t *Trees) store(ctx context.Context, org string) (domain.Region, *readmodel.EventStore, error) {
	region, ok, err := t.cfg.Regions.Region(ctx, org)
	if err != nil || !ok {
		return "", nil, err
	}
	return region, t.cfg.Events[region], nil
}

// checkStore is store on the integrity pool, for the API's integrity
// queries, once the gate admitted the request; release ends the admission.
func (t *Trees) checkStore(ctx context.Context, org string) (region domain.Region, st *readmodel.EventStore, release func(), err error) {
	release, err = t.cfg.Gate.admit(ctx, org)
	if err != nil {
		return "", nil, nil, err
	}
	region, ok, err := t.cfg.Regions.Region(ctx, org)
	if err != nil || !ok {
		return "", nil, release, err
	}
	return region, t.cfg.Checks[region], release, nil
}

// Checkpoint is org's latest checkpoint; when the tree has grown past it,
// or has none, one is issued now, so it covers every projected event,
// unless one was issued for org less than CheckpointMinInterval ago.
func (t *Trees) Checkpoint(ctx context.Context, org string) (*integ.SignedCheckpoint, treelog.Checkpoint, error) {
	region, st, release, err := t.checkStore(ctx, org)
	if release != nil {
		defer release()
	}
	if err != nil {
		return nil, treelog.Checkpoint{}, err
	}
	return t.checkpoint(ctx, region, st, org, true)
}

// checkpoint is Checkpoint on st; onDemand issues at most one checkpoint
// per organization and CheckpointMinInterval.
func (t *Trees) checkpoint(ctx context.Context, region domain.Region, st *readmodel.EventStore, org string, onDemand bool) (*integ.SignedCheckpoint, treelog.Checkpoint, error) {
	if st == nil {
		return t.empty(org, "")
	}
	c, err := t.issue(ctx, region, st, org, onDemand)
	if err != nil {
		return nil, treelog.Checkpoint{}, err
	}
	if c == nil {
		return t.empty(org, region.Lower())
	}
	return c, treelog.Checkpoint{Origin: treelog.Origin(region.Lower(), org), Size: c.Size, Hash: c.Root}, nil
}

// empty signs the checkpoint of an org with no events (kept nowhere:
// it commits to nothing).
func (t *Trees) empty(org, region string) (*integ.SignedCheckpoint, treelog.Checkpoint, error) {
	if region == "" {
		region = "none"
	}
	cp := treelog.Checkpoint{Origin: treelog.Origin(region, org)}
	cp.Hash, _ = tlog.TreeHash(0, nil)
	msg, err := treelog.Sign(cp, t.signer)
	if err != nil {
		return nil, cp, err
	}
	return &integ.SignedCheckpoint{OrgID: org, Note: msg, Root: cp.Hash}, cp, nil
}

// issue returns org's latest checkpoint, issuing one first when the tree
// has grown past it; nil when the tree is empty. An issued checkpoint is
// appended to the checkpoint stream, which keeps it for ever, then to the
// read model. A read that issues (onDemand) gets the latest checkpoint
// instead while it is younger than CheckpointMinInterval: reads, which
// themselves grow the tree, cannot grow the checkpoint stream faster than
// one checkpoint per organization and interval.
func (t *Trees) issue(ctx context.Context, region domain.Region, st *readmodel.EventStore, org string, onDemand bool) (*integ.SignedCheckpoint, error) {
	latest, err := integ.LatestCheckpoint(ctx, st, org)
	if err != nil {
		return nil, err
	}
	if onDemand && latest != nil && t.cfg.MinInterval > 0 &&
		t.cfg.Now().Sub(latest.IssuedAt) < t.cfg.MinInterval {
		return latest, nil
	}
	size, err := st.TreeSize(ctx, org)
	if err != nil {
		return nil, err
	}
	if size == 0 || (latest != nil && latest.Size >= size) {
		return latest, nil
	}
	root, err := integ.TreeHash(ctx, st, org, size)
	if err != nil {
		return nil, err
	}
	msg, err := treelog.Sign(treelog.Checkpoint{Origin: treelog.Origin(region.Lower(), org), Size: size, Hash: root}, t.signer)
	if err != nil {
		return nil, err
	}
	// Instances issuing the same size sign the same bytes (Ed25519 is
	// deterministic), and the message id makes the second a duplicate.
	ack, err := t.cfg.JS.Publish(ctx, natsx.CheckpointSubject(region, org), []byte(msg),
		jetstream.WithMsgID(fmt.Sprintf("%s:%d", org, size)), jetstream.WithExpectStream(natsx.CheckpointStream))
	if err != nil {
		return nil, fmt.Errorf("publish checkpoint of %s: %w", org, err)
	}
	c := integ.SignedCheckpoint{OrgID: org, Size: size, Root: root, Note: msg, IssuedAt: t.cfg.Now().UTC(), Seq: ack.Sequence}
	if err := integ.SaveCheckpoint(ctx, st, c); err != nil {
		return nil, err
	}
	return &c, nil
}

// IssueRegion syncs region r's checkpoints from the stream and gives each
// of its grown trees a checkpoint, unless another instance is doing so.
func (t *Trees) IssueRegion(ctx context.Context, r domain.Region) error {
	st := t.cfg.Events[r]
	_, err := onlyone.Run(ctx, st.Pool(), "checkpoints:"+st.Schema(), func() error {
		if err := t.Sync(ctx, r); err != nil {
			return err
		}
		orgs, err := integ.GrownTrees(ctx, st)
		if err != nil {
			return err
		}
		for _, org := range orgs {
			if _, err := t.issue(ctx, r, st, org, false); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// Sync copies the checkpoints of region the stream holds and the read model
// does not (after a rebuild, or a crash between publish and save) into it.
// It compares with the last checkpoint of the region's own subjects: the
// stream's last sequence is usually another region's, and reading past it
// would wait out a fetch every pass for nothing.
func (t *Trees) Sync(ctx context.Context, r domain.Region) error {
	st := t.cfg.Events[r]
	after, err := integ.LastCheckpointSeq(ctx, st)
	if err != nil {
		return err
	}
	stream, err := t.cfg.JS.Stream(ctx, natsx.CheckpointStream)
	if err != nil {
		return fmt.Errorf("sync checkpoints: %w", err)
	}
	last, err := stream.GetLastMsgForSubject(ctx, natsx.CheckpointSubjects(r))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sync checkpoints: %w", err)
	}
	if last.Sequence <= after {
		return nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{natsx.CheckpointSubjects(r)},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy, OptStartSeq: after + 1,
	})
	if err != nil {
		return fmt.Errorf("sync checkpoints: %w", err)
	}
	for {
		m, err := cons.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			// The region's last checkpoint is known to be there: running
			// out before it is a failure to retry, not the end.
			return fmt.Errorf("sync checkpoints through %d: %w", last.Sequence, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("sync checkpoints: %w", err)
		}
		org := m.Subject()[strings.LastIndexByte(m.Subject(), '.')+1:]
		size, root, err := t.open(string(m.Data()))
		if err != nil {
			t.cfg.Log.Error().Err(err).Uint64("seq", md.Sequence.Stream).Msg("checkpoint in the stream does not open with the configured key; skipped")
		} else if err := integ.SaveCheckpoint(ctx, st, integ.SignedCheckpoint{
			OrgID: org, Size: size, Root: root, Note: string(m.Data()), IssuedAt: md.Timestamp.UTC(), Seq: md.Sequence.Stream,
		}); err != nil {
			return err
		}
		if md.Sequence.Stream >= last.Sequence {
			return nil
		}
	}
}

// ProveEvent is the inclusion proof of org's event id in the tree of size
// treeSize (nil: the latest checkpoint's, issued now if the tree grew).
func (t *Trees) ProveEvent(ctx context.Context, org, id string, treeSize *int64) (leaf, size int64, proof []tlog.Hash, err error) {
	region, st, release, err := t.checkStore(ctx, org)
	if release != nil {
		defer release()
	}
	if err != nil {
		return 0, 0, nil, err
	}
	if st == nil {
		return 0, 0, nil, domain.Errorf(domain.CodeNotFound, "id", "the organization has no event with this id")
	}
	e, err := st.Get(ctx, org, id)
	if err != nil {
		return 0, 0, nil, err
	}
	if e == nil || e.LeafIndex == nil {
		return 0, 0, nil, domain.Errorf(domain.CodeNotFound, "id", "the organization has no event with this id")
	}
	if treeSize != nil {
		size = *treeSize
	} else {
		c, err := t.issue(ctx, region, st, org, true)
		if err != nil {
			return 0, 0, nil, err
		}
		if c == nil || c.Size <= *e.LeafIndex {
			return 0, 0, nil, domain.Errorf(domain.CodeRateLimited, "treeSize",
				"the latest checkpoint does not cover leaf %d yet, and a read issues at most one every %s; try again then, or name a treeSize",
				*e.LeafIndex, t.cfg.MinInterval)
		}
		size = c.Size
	}
	p, err := integ.ProveRecord(ctx, st, org, size, *e.LeafIndex)
	if errors.Is(err, readmodel.ErrNoLeaf) {
		return 0, 0, nil, domain.BadInput("treeSize", "must be larger than the event's leaf index %d and at most the tree's size", *e.LeafIndex)
	}
	return *e.LeafIndex, size, p, err
}

// ProveConsistency is the consistency proof of org's tree of size from
// with its tree of size to.
func (t *Trees) ProveConsistency(ctx context.Context, org string, from, to int64) ([]tlog.Hash, error) {
	_, st, release, err := t.checkStore(ctx, org)
	if release != nil {
		defer release()
	}
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, domain.BadInput("to", "the organization's log is empty")
	}
	p, err := integ.ProveTree(ctx, st, org, from, to)
	if errors.Is(err, readmodel.ErrNoLeaf) {
		return nil, domain.BadInput("from", "must be between 1 and to, and to at most the tree's size")
	}
	return p, err
}

// Verify recomputes org's tree from the stream and compares the read model
// and the stored checkpoints with it.
func (t *Trees) Verify(ctx context.Context, org string, from, to int64) (*integ.Verification, error) {
	_, st, release, err := t.checkStore(ctx, org)
	if release != nil {
		defer release()
	}
	if err != nil {
		return nil, err
	}
	if st == nil {
		return &integ.Verification{OK: true}, nil
	}
	return integ.VerifyTree(ctx, st, t.cfg.JS, org, from, to, t.open)
}

// CheckpointNote is the signed note of Checkpoint, as the C2SP tlog-tiles
// layout serves it at <prefix>/checkpoint.
func (t *Trees) CheckpointNote(ctx context.Context, org string) (string, error) {
	c, _, err := t.Checkpoint(ctx, org)
	if err != nil {
		return "", err
	}
	return c.Note, nil
}

// Tile is tile t of org's tree (C2SP tlog-tiles, height 8) for an auditor
// to verify the log with its own tooling: the hashes of a full tile, or the
// first t.W of a partial one. The tree only grows, so a partial tile asked
// for after its tile filled is a prefix of what is stored. A tile the tree
// does not have yet is NOT_FOUND.
func (t *Trees) Tile(ctx context.Context, org string, tile tlog.Tile) ([]byte, error) {
	missing := domain.Errorf(domain.CodeNotFound, "", "the tree of %s has no tile %s", org, tile.Path())
	if tile.H != tiles.Height || tile.L < 0 || tile.W < 1 {
		return nil, missing
	}
	_, st, release, err := t.checkStore(ctx, org)
	if release != nil {
		defer release()
	}
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, missing
	}
	data, err := st.Tile(ctx, org, tile.L, tile.N)
	if err != nil {
		return nil, err
	}
	if len(data) < tile.W*tlog.HashSize {
		return nil, missing
	}
	return data[:tile.W*tlog.HashSize], nil
}

// ExportProver lends exports the trees' checkpoints, proofs and key.
func (t *Trees) ExportProver() ndjson.Prover { return exportProver{t} }

type exportProver struct{ t *Trees }

// Checkpoint is org's latest checkpoint, issued now if the tree grew.
func (p exportProver) Checkpoint(ctx context.Context, org string) (string, treelog.Checkpoint, error) {
	region, st, err := p.t.store(ctx, org)
	if err != nil {
		return "", treelog.Checkpoint{}, err
	}
	c, cp, err := p.t.checkpoint(ctx, region, st, org, false)
	if err != nil {
		return "", cp, err
	}
	return c.Note, cp, nil
}

// TreeHashes reads org's stored tree hashes for the length of ctx.
func (p exportProver) TreeHashes(ctx context.Context, org string) (tlog.HashReader, error) {
	_, st, err := p.t.store(ctx, org)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, readmodel.ErrNoLeaf
	}
	return st.Hashes(ctx, org), nil
}

// SignManifest signs an export's manifest with the log's key.
func (p exportProver) SignManifest(text string) (string, error) {
	msg, err := note.Sign(&note.Note{Text: text}, p.t.signer)
	if err != nil {
		return "", fmt.Errorf("sign manifest: %w", err)
	}
	return string(msg), nil
}
