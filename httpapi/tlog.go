package httpapi

import (
	"context"
	"net/http"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/domain"
)

// TlogPrefix is where each organization's log is served in the C2SP
// tlog-tiles layout: /tlog/<org>/checkpoint and
// /tlog/<org>/tile/<L>/<N>[.p/<W>], for an auditor's own tooling.
const TlogPrefix = "/tlog/"

// TileLog is what the tile endpoints serve: an organization's signed
// checkpoint note and the tiles of its tree (transparency.Trees).
type TileLog interface {
	CheckpointNote(ctx context.Context, org string) (string, error)
	Tile(ctx context.Context, org string, t tlog.Tile) ([]byte, error)
}

// tlogRoutes adds the tile endpoints to mux when d serves them.
func (s *API) tlogRoutes(mux *http.ServeMux) {
	if s.cfg.Tiles == nil {
		return
	}
	guard := func(h http.HandlerFunc) http.Handler {
		return cors(s.cfg.AllowedOrigins, s.cfg.Verifier.Middleware(withRequest(h)))
	}
	mux.Handle("GET "+TlogPrefix+"{org}/checkpoint", guard(s.tlogCheckpoint))
	mux.Handle("GET "+TlogPrefix+"{org}/tile/{path...}", guard(s.tlogTile))
}

// tlogOrg is the organization a tile request names, which must be the
// caller's own, and the caller an administrator of it: the tree tells how
// many events the organization has and when, which is the log's to show.
func tlogOrg(r *http.Request) (string, error) {
	p, err := auth.FromContext(r.Context())
	if err != nil {
		return "", err
	}
	org := r.PathValue("org")
	if !p.IsAdmin() || p.OrgID != org {
		return "", domain.Errorf(domain.CodeForbidden, "", "the log of an organization is served to its administrators")
	}
	return org, nil
}

// tlogCheckpoint answers the organization's latest signed checkpoint (a
// C2SP tlog-checkpoint note), issuing one first when the tree has grown.
func (s *API) tlogCheckpoint(w http.ResponseWriter, r *http.Request) {
	org, err := tlogOrg(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	note, err := s.cfg.Tiles.CheckpointNote(r.Context(), org)
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "private, no-cache")
	_, _ = w.Write([]byte(note))
}

// tlogTile answers one tile of the organization's tree. A full tile never
// changes, so a client may keep it; a partial one is replaced as it fills.
func (s *API) tlogTile(w http.ResponseWriter, r *http.Request) {
	org, err := tlogOrg(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	rest := r.PathValue("path")
	t, perr := tlog.ParseTilePath("tile/8/" + rest)
	if perr != nil || strings.HasPrefix(rest, "data/") || strings.HasPrefix(rest, "entries/") {
		writeError(w, r, domain.Errorf(domain.CodeNotFound, "", "no tile at %s", rest))
		return
	}
	data, err := s.cfg.Tiles.Tile(r.Context(), org, t)
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if t.W == 1<<t.H {
		w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "private, no-cache")
	}
	_, _ = w.Write(data)
}
