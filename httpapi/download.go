package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/reads"
)

// download streams a finished export file to an administrator of its
// organization, who shows either a bearer token or a signed link's token.
func (s *API) download(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	org, reader, err := s.downloader(r, id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	job, err := s.jobs.Get(ctx, org, id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	switch {
	case job.Status != domain.ExportSucceeded:
		writeError(w, r, domain.Errorf(domain.CodeConflict, "", "export %s is %s; only a SUCCEEDED export has a file", id, job.Status))
		return
	case job.Expired(s.cfg.Now()):
		writeError(w, r, domain.Errorf(domain.CodeExpired, "", "the file of export %s expired at %s", id, job.ExpiresAt))
		return
	}
	if err := s.reads.Record(ctx, org, reader, reads.Read{Action: reads.Download, ExportID: job.ID}); err != nil {
		writeError(w, r, err)
		return
	}
	files, err := s.js.ObjectStore(ctx, natsx.ExportFilesBucket(job.Region))
	if err != nil {
		writeError(w, r, err)
		return
	}
	obj, err := files.Get(ctx, job.ID)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		writeError(w, r, domain.Errorf(domain.CodeExpired, "", "the file of export %s is no longer stored", id))
		return
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer obj.Close()
	info, err := obj.Info()
	if err != nil {
		writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", job.Format.ContentType())
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": job.FileName()}))
	h.Set("Content-Length", strconv.FormatUint(info.Size, 10))
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if _, err := io.Copy(w, obj); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("export_id", id).Msg("download interrupted")
	}
}

// downloader returns the organization whose file id the request may read,
// and who reads it: a signed link's token names the organization (its
// holder is known only as the link); a bearer token must be an
// administrator's.
func (s *API) downloader(r *http.Request, id string) (string, domain.Actor, error) {
	if token := r.URL.Query().Get("token"); token != "" {
		org, err := s.signer.Verify(token, id)
		link := domain.Actor{Kind: domain.ActorSystem, ID: "download-link:" + id, Name: "signed download link"}
		return org, link, err
	}
	p, err := auth.FromContext(r.Context())
	if err != nil {
		return "", domain.Actor{}, err
	}
	if !p.IsAdmin() {
		return "", domain.Actor{}, domain.Errorf(domain.CodeForbidden, "", "requires an administrator of the organization")
	}
	return p.OrgID, p.Actor(), nil
}

var statusOf = map[domain.Code]int{
	domain.CodeUnauthenticated: http.StatusUnauthorized,
	domain.CodeForbidden:       http.StatusForbidden,
	domain.CodeBadUserInput:    http.StatusBadRequest,
	domain.CodeNotFound:        http.StatusNotFound,
	domain.CodeConflict:        http.StatusConflict,
	domain.CodeExpired:         http.StatusGone,
	domain.CodeUnavailable:     http.StatusServiceUnavailable,
	domain.CodeRateLimited:     http.StatusTooManyRequests,
}

// writeError answers a plain HTTP endpoint in the shape of a GraphQL error,
// so clients read one error format. Internal errors are logged, not shown.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	writeErrorStatus(w, r, statusOf[domain.CodeOf(err)], err)
}

// writeErrorStatus is writeError with the HTTP status chosen by the caller;
// a zero status means the error is internal.
func writeErrorStatus(w http.ResponseWriter, r *http.Request, status int, err error) {
	code := domain.CodeOf(err)
	msg := err.Error()
	if status == 0 {
		code, status, msg = domain.CodeInternal, http.StatusInternalServerError, "internal error"
		zerolog.Ctx(r.Context()).Error().Err(err).Str("path", r.URL.Path).Msg("internal error")
	}
	w.Header().Set("Content-Type", "application/json")
	if code == domain.CodeUnauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="auditlog"`)
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{
		"message": msg, "extensions": map[string]string{"code": string(code)},
	}}})
}
