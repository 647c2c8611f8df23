package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/integrity"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/export/ndjson"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/server"
	"github.com/auditlog/auditlog/treelog"
)

type checkpointView struct {
	Note, Origin, RootHash string
	TreeSize               int64
}

func checkpointOf(t *testing.T, env *testenv.Env, org string) checkpointView {
	t.Helper()
	var out struct{ AuditLogCheckpoint checkpointView }
	env.Do(t, testenv.AdminToken(t, org), `{ auditLogCheckpoint { note origin treeSize rootHash } }`, nil).MustData(t, &out)
	return out.AuditLogCheckpoint
}

// outsideCheckpoint checks a checkpoint as a verifier outside the service
// would: with the verifier key, the note format and nothing of auditlog.
func outsideCheckpoint(t *testing.T, vkey, msg string) (origin string, size int64, root tlog.Hash) {
	t.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open([]byte(msg), note.VerifierList(v))
	if err != nil {
		t.Fatalf("checkpoint does not verify: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		t.Fatalf("not a tlog-checkpoint body: %q", n.Text)
	}
	size, err = strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	h, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize {
		t.Fatalf("root hash %q: %v", lines[2], err)
	}
	return lines[0], size, tlog.Hash(h)
}

func decodeHashes(t *testing.T, ss []string) []tlog.Hash {
	t.Helper()
	out := make([]tlog.Hash, len(ss))
	for i, s := range ss {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != tlog.HashSize {
			t.Fatalf("proof hash %q: %v", s, err)
		}
		out[i] = tlog.Hash(b)
	}
	return out
}

// An outside verifier needs only the verifier key, the note format and
// tlog to check the checkpoint, that an event's record is in the tree, and
// that a later checkpoint extends an earlier one.
func TestOutsideVerifierChecksCheckpointRecordAndProof(t *testing.T) {
	// The test asks for a second checkpoint seconds after the first.
	env := testenv.Start(t, func(c *server.Config) { c.CheckpointMinInterval = -1 })
	env.EnableOrg(t, "acme", domain.RegionUS)
	env.EnableOrg(t, "globex", domain.RegionUS)
	seed(t, env, "acme", 11)
	seed(t, env, "globex", 3)
	env.WaitProjected(t)
	admin := testenv.AdminToken(t, "acme")

	var key struct{ AuditLogVerifierKey string }
	env.Do(t, admin, `{ auditLogVerifierKey }`, nil).MustData(t, &key)
	vkey := key.AuditLogVerifierKey
	cp := checkpointOf(t, env, "acme")
	origin, size, root := outsideCheckpoint(t, vkey, cp.Note)
	if origin != "auditlog/us/acme" || size != 12 || cp.TreeSize != size || cp.Origin != origin ||
		cp.RootHash != base64.StdEncoding.EncodeToString(root[:]) {
		t.Fatalf("checkpoint %+v: note says %s %d", cp, origin, size)
	}

	var events struct {
		AuditEvents struct {
			Edges []struct {
				Node struct {
					ID, Record string
					LeafIndex  *int64
				}
			}
		}
	}
	// The query's own read event may or may not be projected by then: the
	// checkpoint's 12 events are the others.
	env.Do(t, admin, `query($types: [AuditEventType!]) { auditEvents(first: 50, filter: {types: $types}) { edges { node { id record leafIndex } } } }`,
		map[string]any{"types": readlessTypes()}).MustData(t, &events)
	if len(events.AuditEvents.Edges) != 12 {
		t.Fatalf("%d events", len(events.AuditEvents.Edges))
	}
	leaves := map[int64]bool{}
	for _, e := range events.AuditEvents.Edges {
		n := e.Node
		record, err := base64.StdEncoding.DecodeString(n.Record)
		if err != nil || n.LeafIndex == nil {
			t.Fatalf("event %s: record %v, leaf %v", n.ID, err, n.LeafIndex)
		}
		var body struct{ ID, OrgID string }
		if err := json.Unmarshal(record, &body); err != nil || body.ID != n.ID || body.OrgID != "acme" {
			t.Fatalf("record of %s is %s", n.ID, record)
		}
		var proof struct {
			AuditEventProof struct {
				LeafIndex, TreeSize int64
				Hashes              []string
			}
		}
		// Against the checkpoint in hand: the tree has grown since by the
		// reads this test makes.
		env.Do(t, admin, `query($id: ID!, $n: Int) { auditEventProof(id: $id, treeSize: $n) { leafIndex treeSize hashes } }`,
			map[string]any{"id": n.ID, "n": size}).MustData(t, &proof)
		p := proof.AuditEventProof
		if p.LeafIndex != *n.LeafIndex || p.TreeSize != size {
			t.Fatalf("proof of %s: %+v", n.ID, p)
		}
		if err := tlog.CheckRecord(decodeHashes(t, p.Hashes), size, root, p.LeafIndex, tlog.RecordHash(record)); err != nil {
			t.Fatalf("event %s at leaf %d: %v", n.ID, p.LeafIndex, err)
		}
		// A record changed by one byte is not in the tree.
		bad := bytes.Clone(record)
		bad[len(bad)/2] ^= 1
		if tlog.CheckRecord(decodeHashes(t, p.Hashes), size, root, p.LeafIndex, tlog.RecordHash(bad)) == nil {
			t.Fatalf("a changed record of %s verifies", n.ID)
		}
		leaves[p.LeafIndex] = true
	}
	if len(leaves) != 12 {
		t.Fatalf("leaves %v, want 0..11 once each", leaves)
	}

	// The log grows; the new checkpoint extends the old one.
	seed(t, env, "acme", 5)
	env.WaitProjected(t)
	next := checkpointOf(t, env, "acme")
	_, nsize, nroot := outsideCheckpoint(t, vkey, next.Note)
	if nsize < 17 { // 12, the 5 new ones, and this test's recorded reads
		t.Fatalf("new checkpoint has %d leaves", nsize)
	}
	var cons struct{ AuditLogConsistencyProof []string }
	env.Do(t, admin, `query($f: Int!, $t: Int!) { auditLogConsistencyProof(from: $f, to: $t) }`,
		map[string]any{"f": size, "t": nsize}).MustData(t, &cons)
	proof := decodeHashes(t, cons.AuditLogConsistencyProof)
	if err := tlog.CheckTree(proof, nsize, nroot, size, root); err != nil {
		t.Fatalf("consistency of %d with %d: %v", size, nsize, err)
	}

	// An older checkpoint and a newer one that are not consistent: a
	// forked log, signed with the right key, is caught and the sizes named.
	skey, err := os.ReadFile(filepath.Join(env.Config.DataDir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatal(err)
	}
	forkRoot := root
	forkRoot[0] ^= 0xff
	forked, err := treelog.Sign(treelog.Checkpoint{Origin: origin, Size: size, Hash: forkRoot}, signer)
	if err != nil {
		t.Fatal(err)
	}
	older, err := treelog.Open(forked, vkey)
	if err != nil {
		t.Fatal(err)
	}
	newer, err := treelog.Open(next.Note, vkey)
	if err != nil {
		t.Fatal(err)
	}
	err = treelog.CheckConsistency(older, newer, proof)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("tree of 12 leaves is not a prefix of the tree of %d", nsize)) {
		t.Fatalf("inconsistent checkpoints: %v", err)
	}
	if tlog.CheckTree(proof, nsize, nroot, size, forkRoot) == nil {
		t.Fatal("tlog accepts the forked checkpoint")
	}

	// A user who is not an administrator gets none of it.
	r := env.Do(t, testenv.UserToken(t, "acme"), `{ auditLogCheckpoint { note } }`, nil)
	if r.ErrorCode(t) != "FORBIDDEN" {
		t.Fatalf("user: %+v", r.Errors)
	}
}

type verification struct {
	Ok              bool
	Checked         int64
	TreeSize        int64
	Lag             int64
	FirstDivergence *struct {
		LeafIndex              int64
		EventID                *string
		Field, Expected, Found string
	}
}

func verifyLog(t *testing.T, env *testenv.Env, org string) verification {
	t.Helper()
	var out struct{ VerifyAuditLog verification }
	env.Do(t, testenv.AdminToken(t, org), `{ verifyAuditLog { ok checked treeSize lag firstDivergence { leafIndex eventId field expected found } } }`, nil).MustData(t, &out)
	return out.VerifyAuditLog
}

// A read model behind its stream is lag, not a divergence: with the
// projector's writes held back, events just recorded verify ok with their
// leaves counted as lag; once projected they are checked, and a real
// divergence among projected leaves is still found while others lag.
func TestVerificationTellsLagFromDivergence(t *testing.T) {
	env := testenv.Start(t)
	orgs := []string{"lag1", "lag2", "lag3", "lag4"}
	at := time.Now().Add(-time.Hour)
	for i, org := range orgs {
		env.EnableOrg(t, org, domain.RegionUS)
		mustRecord(t, env, []map[string]any{userCreated(org, at, fmt.Sprintf("first%d@example.com", i))})
	}
	env.WaitProjected(t)
	ctx := context.Background()
	pool := env.EventStore(domain.RegionUS).Pool()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	// The projector's next transaction waits on this lock; reads pass.
	if _, err := tx.Exec(ctx, `LOCK TABLE audit_us.event_ids IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	for i, org := range orgs {
		mustRecord(t, env, []map[string]any{userCreated(org, at, fmt.Sprintf("second%d@example.com", i)), userCreated(org, at, fmt.Sprintf("third%d@example.com", i))})
	}
	for _, org := range orgs {
		v := verifyLog(t, env, org)
		// Reading the log records a view too, so the stream may hold more.
		if !v.Ok || v.Lag < 2 || v.TreeSize < 4 || v.FirstDivergence != nil {
			t.Fatalf("%s while its projection waits: %+v, want ok with at least 2 leaves of lag", org, v)
		}
	}
	// A real divergence in a projected leaf is found though others lag.
	if _, err := pool.Exec(ctx, `UPDATE audit_us.events SET actor_name = 'Mallory' WHERE org_id = 'lag1' AND leaf_index = 1`); err != nil {
		t.Fatal(err)
	}
	if v := verifyLog(t, env, "lag1"); v.Ok || v.FirstDivergence == nil || v.FirstDivergence.Field != "actor.name" {
		t.Fatalf("tampered while lagging: %+v", v)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	env.WaitProjected(t)
	for _, org := range orgs[1:] {
		if v := verifyLog(t, env, org); !v.Ok || v.Lag != 0 && v.Lag > 1 {
			t.Fatalf("%s once projected: %+v", org, v)
		}
	}
}

// Every kind of tampering with the read model is found by verifyAuditLog
// and located by leaf, event and field; undoing it makes the log verify.
func TestVerifyAuditLogLocatesTampering(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	seed(t, env, "acme", 9)
	env.WaitProjected(t)
	ctx := context.Background()
	env.IssueCheckpoints(ctx)
	pool := env.EventStore(domain.RegionUS).Pool()
	if v := verifyLog(t, env, "acme"); !v.Ok || v.Checked != 10 || v.TreeSize != 10 {
		t.Fatalf("untouched log: %+v", v)
	}
	idAt := func(leaf int) string {
		var id string
		if err := pool.QueryRow(ctx, `SELECT id FROM audit_us.events WHERE org_id = 'acme' AND leaf_index = $1`, leaf).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	id3, id4, id2, id6 := idAt(3), idAt(4), idAt(2), idAt(6)
	var hash7 []byte
	if err := pool.QueryRow(ctx, `SELECT substring(data FROM 7*32+1 FOR 32) FROM audit_us.tree_tiles WHERE org_id = 'acme' AND level = 0 AND n = 0`).Scan(&hash7); err != nil {
		t.Fatal(err)
	}
	skey, _ := os.ReadFile(filepath.Join(env.Config.DataDir, "signing.key"))
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := treelog.Sign(treelog.Checkpoint{Origin: "auditlog/us/acme", Size: 5, Hash: tlog.Hash{1}}, signer)

	tests := []struct {
		name            string
		tamper, undo    func()
		leaf            int64
		id, field       string
		expected, found string
	}{
		{
			name:   "a field changed",
			tamper: func() { mustExec(t, pool, `UPDATE audit_us.events SET actor_name = 'Mallory' WHERE id = $1`, id3) },
			undo:   func() { mustExec(t, pool, `UPDATE audit_us.events SET actor_name = 'Grace Hopper' WHERE id = $1`, id3) },
			leaf:   3, id: id3, field: "actor.name", expected: "Grace Hopper", found: "Mallory",
		},
		{
			name:   "a row deleted",
			tamper: func() { mustExec(t, pool, `DELETE FROM audit_us.events WHERE id = $1`, id4) },
			// Repair puts the row back on its own leaf.
			undo: func() {
				if _, err := env.Reconcile(ctx, true); err != nil {
					t.Fatal(err)
				}
			},
			leaf: 4, id: id4, field: "row", expected: "event " + id4, found: "no row",
		},
		{
			name: "two rows swapped",
			tamper: func() {
				mustExec(t, pool, `UPDATE audit_us.events SET leaf_index = CASE leaf_index WHEN 2 THEN 6 ELSE 2 END WHERE org_id = 'acme' AND leaf_index IN (2, 6)`)
			},
			undo: func() {
				mustExec(t, pool, `UPDATE audit_us.events SET leaf_index = CASE leaf_index WHEN 2 THEN 6 ELSE 2 END WHERE org_id = 'acme' AND leaf_index IN (2, 6)`)
			},
			leaf: 2, id: id2, field: "id", expected: id2, found: id6,
		},
		{
			name: "a tree hash changed",
			tamper: func() {
				mustExec(t, pool, `UPDATE audit_us.tree_tiles SET data = overlay(data PLACING $1 FROM 7*32+1 FOR 32) WHERE org_id = 'acme' AND level = 0 AND n = 0`, make([]byte, 32))
			},
			undo: func() {
				mustExec(t, pool, `UPDATE audit_us.tree_tiles SET data = overlay(data PLACING $1 FROM 7*32+1 FOR 32) WHERE org_id = 'acme' AND level = 0 AND n = 0`, hash7)
			},
			leaf: 7, field: "treeHash", expected: base64.StdEncoding.EncodeToString(hash7), found: base64.StdEncoding.EncodeToString(make([]byte, 32)),
		},
		{
			name: "a checkpoint inconsistent with the log",
			tamper: func() {
				mustExec(t, pool, `INSERT INTO audit_us.checkpoints VALUES ('acme', 5, $1, $2, now(), 0)`, tlog.Hash{1}.String(), forged)
				mustExec(t, pool, `UPDATE audit_us.checkpoints SET root_hash = $1 WHERE tree_size = 5`, (&tlog.Hash{1})[:])
			},
			undo: func() { mustExec(t, pool, `DELETE FROM audit_us.checkpoints WHERE tree_size = 5`) },
			leaf: 4, field: "checkpoint[5].rootHash", found: base64.StdEncoding.EncodeToString((&tlog.Hash{1})[:]),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.tamper()
			v := verifyLog(t, env, "acme")
			d := v.FirstDivergence
			if v.Ok || d == nil {
				t.Fatalf("not detected: %+v", v)
			}
			if d.LeafIndex != tc.leaf || d.Field != tc.field || (tc.id != "" && (d.EventID == nil || *d.EventID != tc.id)) ||
				(tc.expected != "" && d.Expected != tc.expected) || (tc.found != "" && d.Found != tc.found) {
				t.Fatalf("located at leaf %d, event %v, field %s, expected %q, found %q; want leaf %d, event %s, field %s",
					d.LeafIndex, deref(d.EventID), d.Field, d.Expected, d.Found, tc.leaf, tc.id, tc.field)
			}
			t.Logf("leaf %d, event %s, %s: expected %q, found %q", d.LeafIndex, deref(d.EventID), d.Field, d.Expected, d.Found)
			tc.undo()
			if v := verifyLog(t, env, "acme"); !v.Ok {
				t.Fatalf("after undoing: %+v", v.FirstDivergence)
			}
		})
	}
}

func mustExec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// A rebuild projects every tree again from the stream: the same roots, the
// same leaves, and the checkpoints back from their stream, still verifying.
func TestRebuildGivesTheSameRoots(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	env.EnableOrg(t, "globex", domain.RegionEU)
	seed(t, env, "acme", 700)
	seed(t, env, "globex", 33)
	// A duplicate past the de-duplication layer of JetStream is not a leaf.
	env.WaitProjected(t)
	before := map[string]checkpointView{"acme": checkpointOf(t, env, "acme"), "globex": checkpointOf(t, env, "globex")}
	after := env.Rebuild(t)
	ctx := context.Background()
	for org, cp := range before {
		for _, r := range []domain.Region{domain.RegionUS, domain.RegionEU} {
			st := after.EventStore(r)
			size, err := st.TreeSize(ctx, org)
			if err != nil {
				t.Fatal(err)
			}
			if size == 0 {
				continue
			}
			root, err := integrity.TreeHash(ctx, st, org, cp.TreeSize)
			if err != nil {
				t.Fatal(err)
			}
			if size != cp.TreeSize || base64.StdEncoding.EncodeToString(root[:]) != cp.RootHash {
				t.Fatalf("%s after rebuild: %d leaves, root %x; before %d, %s", org, size, root, cp.TreeSize, cp.RootHash)
			}
		}
		if got := checkpointOf(t, after, org); got != cp {
			t.Fatalf("%s: checkpoint after rebuild\n%+v\nbefore\n%+v", org, got, cp)
		}
		if v := verifyLog(t, after, org); !v.Ok {
			t.Fatalf("%s does not verify after rebuild: %+v", org, v.FirstDivergence)
		}
	}
}

// An NDJSON export proves itself offline with the verifier key: the whole
// log and a filtered part verify, each event against the signed tree, and
// each way of tampering with the file is found and named.
func TestExportProvesItself(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	env.EnableOrg(t, "globex", domain.RegionUS)
	// Logouts and password changes alternate, so a filter on one type leaves gaps
	// between its leaves for the range proof to cover.
	base := time.Now().Add(-time.Hour).UTC()
	var batch []map[string]any
	for i := range 24 {
		typ := []string{"USER_LOGOUT", "USER_CHANGED_PASSWORD"}[i%2]
		batch = append(batch, ev("acme", typ, "PLATFORM", base.Add(time.Duration(i)*time.Second), map[string]any{"userId": "u1"}, nil))
	}
	// Another organization's events of the same type and time.
	for i := range 12 {
		batch = append(batch, ev("globex", "USER_LOGOUT", "PLATFORM", base.Add(time.Duration(10+i)*time.Second), map[string]any{"userId": "u1"}, nil))
	}
	mustRecord(t, env, batch)
	env.WaitProjected(t)
	admin := testenv.AdminToken(t, "acme")
	download := func(token string, filter map[string]any) []byte {
		t.Helper()
		job := waitExport(t, env, token, startExport(t, env, token, filter, "NDJSON").ID)
		if job.Status != "SUCCEEDED" {
			t.Fatalf("job: %+v", job)
		}
		resp := get(t, env.URL+"/exports/"+job.ID, token)
		file, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return file
	}
	// The seeded events only: the export's own AUDIT_LOG_EXPORTED event may
	// or may not be projected when the export reads the log.
	from := base.Add(4 * time.Second)
	filter := map[string]any{"types": []string{"USER_LOGOUT"}, "from": from.Format(time.RFC3339Nano)}
	file := download(admin, filter)
	vkey := env.VerifierKey()
	got, err := ndjson.Verify(bytes.NewReader(file), vkey)
	if err != nil || got.Events != 10 || got.Manifest != 3 || got.Checkpoint.Origin != "auditlog/us/acme" {
		t.Fatalf("the export as made: %+v, %v", got, err)
	}
	// The signed manifest tells a filtered export from the whole log.
	if got.Completeness != ndjson.PartialFiltered || got.Filter == nil || !slices.Equal(got.Filter.Types, []domain.EventType{"USER_LOGOUT"}) ||
		!strings.Contains(got.String(), "export: partial (filtered)") || !strings.Contains(got.String(), "time range: "+from.Format(time.RFC3339Nano)+" to (open)") {
		t.Fatalf("a filtered export verifies as %q with filter %+v:\n%s", got.Completeness, got.Filter, got)
	}
	wholeFile := download(admin, nil)
	all, err := ndjson.Verify(bytes.NewReader(wholeFile), vkey)
	if err != nil || all.Completeness != ndjson.Complete || all.Events != all.Checkpoint.Size || all.FirstLeaf != all.Checkpoint.Size-1 || all.LastLeaf != 0 {
		t.Fatalf("an unfiltered export verifies as %+v, %v", all, err)
	}
	if bytes.Contains(file, []byte(`"record":`)) || bytes.Contains(wholeFile, []byte(`"record":`)) {
		t.Fatal("a line carries the record its fields rebuild")
	}
	t.Logf("filtered:\n%s\nunfiltered:\n%s", got, all)
	globex := bytes.SplitAfter(download(testenv.AdminToken(t, "globex"), filter), []byte("\n"))

	lines := bytes.SplitAfter(file, []byte("\n"))
	lines = lines[:len(lines)-1] // after the last newline
	last := len(lines)           // the manifest's line
	if !bytes.HasPrefix(lines[last-2], []byte(`{"proof":[`)) {
		t.Fatalf("no range proof before the manifest: %s", lines[last-2])
	}
	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }
	with := func(i int, line []byte) []byte {
		ls := slices.Clone(lines)
		ls[i] = line
		return join(ls...)
	}
	replaced := func(i int, old, new string) []byte {
		if !bytes.Contains(lines[i], []byte(old)) {
			t.Fatalf("line %d has no %q", i+1, old)
		}
		return with(i, bytes.Replace(lines[i], []byte(old), []byte(new), 1))
	}
	numbered := func(line []byte, n int) []byte {
		return regexp.MustCompile(`,"n":\d+,`).ReplaceAll(line, fmt.Appendf(nil, `,"n":%d,`, n))
	}
	// A line of globex's put in place of line i, with that line's leaf.
	globexAt := func(i int) []byte {
		leaf := regexp.MustCompile(`,"leafIndex":\d+`)
		return with(i, leaf.ReplaceAll(numbered(globex[2], i), leaf.Find(lines[i])))
	}
	tests := []struct {
		name   string
		file   []byte
		line   int
		reason string
	}{
		{"a byte of a field changed", replaced(3, "Grace Hopper", "Grace Hoppor"), last, "do not rebuild the checkpoint's tree"},
		{"a line dropped", join(slices.Delete(slices.Clone(lines), 4, 5)...), 5, "where event 4 should be"},
		{"two lines swapped", join(slices.Concat(lines[:2], [][]byte{lines[3], lines[2]}, lines[4:])...), 3, "where event 2 should be"},
		{"two lines swapped and renumbered", join(slices.Concat(lines[:2], [][]byte{numbered(lines[3], 2), numbered(lines[2], 3)}, lines[4:])...), last, "reordered"},
		{"a line repeated", with(4, numbered(lines[2], 4)), 5, "is line 3's too"},
		{"a line of another organization's", globexAt(2), last, "do not rebuild the checkpoint's tree"},
		{"the filter in the header widened", replaced(0, `"types":["USER_LOGOUT"],`, ""), last, "the manifest signed the filter"},
		{"the time range in the header moved", replaced(0, `"from":`, `"to":`), 2, "is not one the export's filter"},
		{"the manifest of another export", with(last-1, bytes.SplitAfter(wholeFile, []byte("\n"))[bytes.Count(wholeFile, []byte("\n"))-1]), last, "the manifest signed the filter"},
		{"the checkpoint changed", replaced(0, `auditlog/us/acme`, `auditlog/us/acmf`), 1, "checkpoint"},
		{"the manifest dropped", join(lines[:last-1]...), last, "ends without its manifest"},
		{"the last event dropped", join(slices.Delete(slices.Clone(lines), last-3, last-2)...), last - 1, "do not rebuild the checkpoint's tree"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ndjson.Verify(bytes.NewReader(tc.file), vkey)
			var le *ndjson.LineError
			if !errors.As(err, &le) || le.Line != tc.line || !strings.Contains(le.Reason, tc.reason) {
				t.Fatalf("got %v, want line %d: …%s…", err, tc.line, tc.reason)
			}
			t.Log(err)
		})
	}
	// Another key does not verify it.
	_, other, _ := note.GenerateKey(nil, "someone-else")
	if _, err := ndjson.Verify(bytes.NewReader(file), other); err == nil {
		t.Fatal("verifies with another key")
	}
}
