package httpapi

import (
	"context"
	"net/http"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/reads"
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
//
// Like every read of the log, a tile read is recorded (AUDIT_LOG_VIEWED,
// action tiles, naming the checkpoint or the tile) before it is served,
// once what it names is known to be a tile; an auditor's tooling fetches
// many tiles at once, which coalesce into one counted follow-up.
func (s *API) tlogOrg(r *http.Request, what func() (string, error)) (string, error) {
	p, err := auth.FromContext(r.Context())
	if err != nil {
		return "", err
	}
	org := r.PathValue("org")
	if !p.IsAdmin() || p.OrgID != org {
		return "", domain.Errorf(domain.CodeForbidden, "", "the log of an organization is served to its administrators")
	}
	name, err := what()
	if err != nil {
		return "", err
	}
	if s.reads != nil {
		if err := s.reads.Record(r.Context(), org, p.Actor(), reads.Read{Action: reads.Tiles, ResourceKind: "tlog", ResourceID: name}); err != nil {
			return "", err
		}
	}
	return org, nil
}

// tlogCheckpoint answers the organization's latest signed checkpoint (a
// C2SP tlog-checkpoint note), issuing one first when the tree has grown.
func (s *API) tlogCheckpoint(w http.ResponseWriter, r *http.Request) {
	org, err := s.tlogOrg(r, func() (string, error) { return "checkpoint", nil })
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
	var t tlog.Tile
	org, err := s.tlogOrg(r, func() (string, error) {
		rest := r.PathValue("path")
		var err error
		if t, err = tlog.ParseTilePath("tile/8/" + rest); err != nil || strings.HasPrefix(rest, "data/") || strings.HasPrefix(rest, "entries/") {
			return "", domain.Errorf(domain.CodeNotFound, "", "no tile at %s", rest)
		}
		return t.Path(), nil
	})
	if err != nil {
		writeError(w, r, err)
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
