package model

import (
	"time"

	"github.com/auditlog/auditlog/domain"
)

// ExportJob presents a domain export job. DownloadURL is set by the
// resolver, which signs it for the caller.
type ExportJob struct {
	job         *domain.ExportJob
	DownloadURL *string
}

// NewExportJob presents j.
func NewExportJob(j *domain.ExportJob) *ExportJob { return &ExportJob{job: j} }

// ID is the job id.
func (x *ExportJob) ID() string { return x.job.ID }

// Status is where the job is.
func (x *ExportJob) Status() ExportStatus { return ExportStatus(x.job.Status) }

// Format is the file format.
func (x *ExportJob) Format() ExportFormat { return ExportFormat(x.job.Format) }

// Filter is the filter the job exports.
func (x *ExportJob) Filter() *ExportFilter {
	f := x.job.Filter
	return &ExportFilter{
		// The schema's lists are non-null: absent means empty here.
		Sources:      append([]AuditSource{}, Convert[AuditSource](f.Sources)...),
		Categories:   append([]AuditEventCategory{}, Convert[AuditEventCategory](f.Categories)...),
		Types:        append([]AuditEventType{}, Convert[AuditEventType](f.Types)...),
		ExcludeTypes: append([]AuditEventType{}, Convert[AuditEventType](f.ExcludeTypes)...),
		ActorID:      optional(f.ActorID),
		Search:       optional(f.Search),
		From:         f.From,
		To:           f.To,
		Query:        optional(f.Query),
	}
}

// RowCount is how many rows are written so far.
func (x *ExportJob) RowCount() int { return int(x.job.RowCount) }

// TotalRows is how many rows the file will hold, once known.
func (x *ExportJob) TotalRows() *int {
	if x.job.TotalRows == 0 && x.job.Status != domain.ExportSucceeded {
		return nil
	}
	n := int(x.job.TotalRows)
	return &n
}

// Progress is the fraction done, 0 to 1.
func (x *ExportJob) Progress() float64 { return x.job.Progress() }

// SizeBytes is the size of the finished file.
func (x *ExportJob) SizeBytes() *float64 {
	if x.job.Status != domain.ExportSucceeded {
		return nil
	}
	n := float64(x.job.SizeBytes)
	return &n
}

// Attempts counts the runs started.
func (x *ExportJob) Attempts() int { return x.job.Attempts }

// CreatedAt is when the job was requested.
func (x *ExportJob) CreatedAt() time.Time { return x.job.CreatedAt }

// CreatedBy is who requested it.
func (x *ExportJob) CreatedBy() *Actor { return NewActor(&x.job.CreatedBy) }

// StartedAt is when the last run started.
func (x *ExportJob) StartedAt() *time.Time { return x.job.StartedAt }

// FinishedAt is when the job became final.
func (x *ExportJob) FinishedAt() *time.Time { return x.job.FinishedAt }

// ExpiresAt is when the file is deleted.
func (x *ExportJob) ExpiresAt() *time.Time { return x.job.ExpiresAt }

// Error says why the job failed, or why its last run was retried.
func (x *ExportJob) Error() *string { return optional(x.job.Error) }

// Job is the presented domain job.
func (x *ExportJob) Job() *domain.ExportJob { return x.job }

// Convert maps between the generated enums and the domain's string types;
// nil stays nil.
func Convert[To, From ~string](xs []From) []To {
	if xs == nil {
		return nil
	}
	out := make([]To, len(xs))
	for i, x := range xs {
		out[i] = To(x)
	}
	return out
}
