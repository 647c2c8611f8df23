package domain

import (
	"fmt"
	"time"
)

// ExportFormat is the file format of an export.
type ExportFormat string

// Export formats.
const (
	ExportCSV    ExportFormat = "CSV"
	ExportNDJSON ExportFormat = "NDJSON"
)

// Valid reports whether f is a known format.
func (f ExportFormat) Valid() bool { return f == ExportCSV || f == ExportNDJSON }

// ContentType is the media type of a file in format f.
func (f ExportFormat) ContentType() string {
	if f == ExportNDJSON {
		return "application/x-ndjson"
	}
	return "text/csv; charset=utf-8"
}

// Extension is the file name extension of format f.
func (f ExportFormat) Extension() string {
	if f == ExportNDJSON {
		return "ndjson"
	}
	return "csv"
}

// ExportStatus is where an export job is in its life.
type ExportStatus string

// Export job statuses. SUCCEEDED, FAILED and CANCELLED are final.
const (
	ExportQueued    ExportStatus = "QUEUED"
	ExportRunning   ExportStatus = "RUNNING"
	ExportSucceeded ExportStatus = "SUCCEEDED"
	ExportFailed    ExportStatus = "FAILED"
	ExportCancelled ExportStatus = "CANCELLED"
)

// Final reports whether a job in status s will never change again.
func (s ExportStatus) Final() bool {
	return s == ExportSucceeded || s == ExportFailed || s == ExportCancelled
}

// ExportJob is one request to take an organization's events away as a file.
// Its transitions are the methods below; each refuses to leave a final status,
// so a worker that lost a race with a cancellation cannot resurrect a job.
type ExportJob struct {
	ID         string       `json:"id"`
	OrgID      string       `json:"orgId"`
	Region     Region       `json:"region"`
	Filter     Filter       `json:"filter"`
	Format     ExportFormat `json:"format"`
	Status     ExportStatus `json:"status"`
	CreatedBy  Actor        `json:"createdBy"`
	CreatedAt  time.Time    `json:"createdAt"`
	StartedAt  *time.Time   `json:"startedAt,omitempty"`
	FinishedAt *time.Time   `json:"finishedAt,omitempty"`
	ExpiresAt  *time.Time   `json:"expiresAt,omitempty"`
	// TotalRows is how many rows the file will hold, known once running.
	TotalRows int64 `json:"totalRows"`
	// RowCount is how many rows are written so far.
	RowCount int64 `json:"rowCount"`
	// SizeBytes is the size of the finished file.
	SizeBytes int64 `json:"sizeBytes"`
	// Attempts counts the runs started; a run cut short by a stopped
	// instance is retried.
	Attempts int    `json:"attempts"`
	Error    string `json:"error,omitempty"`
}

// NewExportJob validates a request and returns the queued job.
func NewExportJob(id string, p *Principal, region Region, f Filter, format ExportFormat, now time.Time) (*ExportJob, error) {
	if !format.Valid() {
		return nil, BadInput("format", "unknown format %q", format)
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if !region.Valid() {
		return nil, Errorf(CodeAuditLogDisabled, "", "the audit log of this organization was never enabled")
	}
	return &ExportJob{
		ID: id, OrgID: p.OrgID, Region: region, Filter: f, Format: format,
		Status: ExportQueued, CreatedBy: p.Actor(), CreatedAt: now.UTC(),
	}, nil
}

// Progress is the fraction of rows written, 0 before the total is known.
func (j *ExportJob) Progress() float64 {
	switch {
	case j.Status == ExportSucceeded:
		return 1
	case j.TotalRows <= 0:
		return 0
	}
	return min(float64(j.RowCount)/float64(j.TotalRows), 1)
}

// FileName is the name a download is saved under.
func (j *ExportJob) FileName() string {
	return fmt.Sprintf("audit-log-%s-%s.%s", j.CreatedAt.UTC().Format("20060102T150405Z"), j.ID, j.Format.Extension())
}

func (j *ExportJob) notFinal(to ExportStatus) error {
	if j.Status.Final() {
		return Errorf(CodeConflict, "", "export %s is already %s and cannot become %s", j.ID, j.Status, to)
	}
	return nil
}

// Start marks the beginning of a run.
func (j *ExportJob) Start(now time.Time) error {
	if err := j.notFinal(ExportRunning); err != nil {
		return err
	}
	t := now.UTC()
	j.Status, j.StartedAt, j.Attempts, j.RowCount, j.Error = ExportRunning, &t, j.Attempts+1, 0, ""
	return nil
}

// Requeue returns a job whose run was cut short to the queue, saying why.
func (j *ExportJob) Requeue(reason string) error {
	if err := j.notFinal(ExportQueued); err != nil {
		return err
	}
	j.Status, j.Error = ExportQueued, reason
	return nil
}

// Succeed records the finished file, kept until expires.
func (j *ExportJob) Succeed(rows, size int64, now, expires time.Time) error {
	if err := j.notFinal(ExportSucceeded); err != nil {
		return err
	}
	t, e := now.UTC(), expires.UTC()
	j.Status, j.RowCount, j.TotalRows, j.SizeBytes, j.FinishedAt, j.ExpiresAt, j.Error =
		ExportSucceeded, rows, rows, size, &t, &e, ""
	return nil
}

// Fail ends the job for good with a reason a user can read.
func (j *ExportJob) Fail(reason string, now time.Time) error {
	if err := j.notFinal(ExportFailed); err != nil {
		return err
	}
	t := now.UTC()
	j.Status, j.Error, j.FinishedAt = ExportFailed, reason, &t
	return nil
}

// Cancel ends the job at a user's request.
func (j *ExportJob) Cancel(now time.Time) error {
	if err := j.notFinal(ExportCancelled); err != nil {
		return err
	}
	t := now.UTC()
	j.Status, j.FinishedAt = ExportCancelled, &t
	return nil
}

// Expired reports whether the job's file has been deleted by now.
func (j *ExportJob) Expired(now time.Time) bool {
	return j.ExpiresAt != nil && !now.Before(*j.ExpiresAt)
}
