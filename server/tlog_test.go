package server_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
)

// httpTiles is a tlog.TileReader over the C2SP tlog-tiles endpoints, as an
// auditor's tooling reads them: the tile paths are tlog's, less the
// height, which C2SP fixes at 8.
type httpTiles struct {
	t           *testing.T
	base, token string
}

func (h httpTiles) Height() int { return 8 }

func (h httpTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tile := range tiles {
		status, body := h.get("/tile/" + strings.TrimPrefix(tile.Path(), "tile/8/"))
		if status != http.StatusOK {
			return nil, fmt.Errorf("tile %s: %d %s", tile.Path(), status, body)
		}
		out[i] = body
	}
	return out, nil
}

func (h httpTiles) SaveTiles([]tlog.Tile, [][]byte) {}

func (h httpTiles) get(path string) (int, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.base+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, body
}

// An auditor verifies an organization's log offline with stock tooling:
// the checkpoint and tiles fetched over HTTP in the C2SP layout, checked
// by golang.org/x/mod/sumdb/tlog's TileHashReader (which checks every tile
// against the signed root) and an inclusion proof computed from them.
// Nobody but the organization's administrators gets them.
func TestAuditorVerifiesTheLogFromTiles(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	env.EnableOrg(t, "globex", domain.RegionUS)
	seed(t, env, "acme", 300) // a full tile of leaves and a partial one
	seed(t, env, "globex", 3)
	env.WaitProjected(t)
	admin := testenv.AdminToken(t, "acme")
	acme := httpTiles{t: t, base: env.URL + "/tlog/acme", token: admin}

	status, note := acme.get("/checkpoint")
	if status != http.StatusOK {
		t.Fatalf("checkpoint: %d %s", status, note)
	}
	var key struct{ AuditLogVerifierKey string }
	env.Do(t, admin, `{ auditLogVerifierKey }`, nil).MustData(t, &key)
	origin, size, root := outsideCheckpoint(t, key.AuditLogVerifierKey, string(note))
	if origin != "auditlog/us/acme" || size < 300 {
		t.Fatalf("checkpoint of %s with %d leaves", origin, size)
	}
	hashes := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, acme)
	if got, err := tlog.TreeHash(size, hashes); err != nil || got != root {
		t.Fatalf("root from the tiles %v (%v), checkpoint's %v", got, err, root)
	}

	var events struct {
		AuditEvents struct {
			Edges []struct {
				Node struct {
					ID, Record string
					LeafIndex  int64
				}
			}
		}
	}
	// The newest 50 of the seeded events: leaves on both sides of 256.
	env.Do(t, admin, `query($types: [AuditEventType!]) { auditEvents(first: 50, filter: {types: $types}) { edges { node { id record leafIndex } } } }`,
		map[string]any{"types": readlessTypes()}).MustData(t, &events)
	if len(events.AuditEvents.Edges) != 50 {
		t.Fatalf("%d events", len(events.AuditEvents.Edges))
	}
	below, above := false, false
	for _, e := range events.AuditEvents.Edges {
		n := e.Node
		record, err := base64.StdEncoding.DecodeString(n.Record)
		if err != nil || n.LeafIndex >= size {
			t.Fatalf("event %s: record %v, leaf %d of %d", n.ID, err, n.LeafIndex, size)
		}
		below, above = below || n.LeafIndex < 256, above || n.LeafIndex >= 256
		proof, err := tlog.ProveRecord(size, n.LeafIndex, hashes)
		if err != nil {
			t.Fatalf("proof of leaf %d from the tiles: %v", n.LeafIndex, err)
		}
		if err := tlog.CheckRecord(proof, size, root, n.LeafIndex, tlog.RecordHash(record)); err != nil {
			t.Fatalf("event %s at leaf %d: %v", n.ID, n.LeafIndex, err)
		}
		bad := bytes.Clone(record)
		bad[len(bad)/2] ^= 1
		if tlog.CheckRecord(proof, size, root, n.LeafIndex, tlog.RecordHash(bad)) == nil {
			t.Fatalf("a changed record of %s verifies", n.ID)
		}
	}
	if !below || !above {
		t.Fatalf("the events checked lie on one side of the first tile's edge")
	}

	// The auditor's reads are in the log like any other read of it: the
	// first at once, naming the checkpoint; the tiles after it are counted.
	env.WaitProjected(t)
	var viewed struct {
		AuditEvents struct {
			Edges []struct {
				Node struct{ Details map[string]any }
			}
		}
	}
	env.Do(t, admin, `{ auditEvents(first: 100, filter: {types: [AUDIT_LOG_VIEWED]}) { edges { node { details } } } }`, nil).MustData(t, &viewed)
	recorded := false
	for _, e := range viewed.AuditEvents.Edges {
		d := e.Node.Details
		recorded = recorded || (d["action"] == "tiles" && d["resourceKind"] == "tlog" && d["resourceId"] == "checkpoint")
	}
	if !recorded {
		t.Errorf("no AUDIT_LOG_VIEWED for the checkpoint read among %+v", viewed.AuditEvents.Edges)
	}

	refused := []struct {
		name, token, path string
		status            int
	}{
		{"no token", "", "/tlog/acme/checkpoint", http.StatusUnauthorized},
		{"another organization's administrator", testenv.AdminToken(t, "globex"), "/tlog/acme/tile/0/000", http.StatusForbidden},
		{"a user who is no administrator", testenv.UserToken(t, "acme"), "/tlog/acme/tile/0/000", http.StatusForbidden},
		{"a service", testenv.ServiceToken(t), "/tlog/acme/checkpoint", http.StatusForbidden},
		{"a tile the tree does not have yet", admin, "/tlog/acme/tile/0/009", http.StatusNotFound},
		{"a partial tile wider than the tree", admin, "/tlog/acme/tile/1/000.p/200", http.StatusNotFound},
		{"not a tile path", admin, "/tlog/acme/tile/0/abc", http.StatusNotFound},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			h := httpTiles{t: t, base: env.URL, token: tc.token}
			if status, body := h.get(tc.path); status != tc.status {
				t.Fatalf("GET %s: %d %s; want %d", tc.path, status, body, tc.status)
			}
		})
	}
}
