package domain

import (
	"errors"
	"testing"
	"time"
)

func TestNewExportJobRejectsBadInput(t *testing.T) {
	admin := &Principal{Kind: PrincipalUser, Subject: "u1", OrgID: "org1", Roles: []string{"ADMIN"}}
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	from, to := now, now.Add(-time.Hour)
	tests := []struct {
		name   string
		region Region
		filter Filter
		format ExportFormat
		code   Code
		field  string
	}{
		{"unknown format", RegionUS, Filter{}, "XLSX", CodeBadUserInput, "format"},
		{"bad filter", RegionUS, Filter{Sources: []Source{"NOPE"}}, ExportCSV, CodeBadUserInput, "filter.sources"},
		{"to before from", RegionUS, Filter{From: &from, To: &to}, ExportCSV, CodeBadUserInput, "filter.to"},
		{"never enabled", "", Filter{}, ExportCSV, CodeAuditLogDisabled, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewExportJob("j1", admin, tt.region, tt.filter, tt.format, now)
			var e *Error
			if !errors.As(err, &e) || e.Code != tt.code || e.Field != tt.field {
				t.Fatalf("err = %v, want code %s field %q", err, tt.code, tt.field)
			}
		})
	}
	j, err := NewExportJob("j1", admin, RegionEU, Filter{Search: "x"}, ExportNDJSON, now)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != ExportQueued || j.OrgID != "org1" || j.CreatedBy.ID != "u1" || j.Region != RegionEU {
		t.Fatalf("job = %+v", j)
	}
}

func TestExportJobTransitions(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	queued := func() *ExportJob { return &ExportJob{ID: "j", Status: ExportQueued} }
	running := func() *ExportJob { j := queued(); _ = j.Start(now); return j }
	final := map[string]func() *ExportJob{
		"succeeded": func() *ExportJob { j := running(); _ = j.Succeed(3, 10, now, now.Add(time.Hour)); return j },
		"failed":    func() *ExportJob { j := running(); _ = j.Fail("boom", now); return j },
		"cancelled": func() *ExportJob { j := queued(); _ = j.Cancel(now); return j },
	}
	for name, mk := range final {
		moves := map[string]func(j *ExportJob) error{
			"start":   func(j *ExportJob) error { return j.Start(now) },
			"requeue": func(j *ExportJob) error { return j.Requeue("x") },
			"succeed": func(j *ExportJob) error { return j.Succeed(1, 1, now, now) },
			"fail":    func(j *ExportJob) error { return j.Fail("x", now) },
			"cancel":  func(j *ExportJob) error { return j.Cancel(now) },
		}
		for move, f := range moves {
			j := mk()
			before := *j
			if err := f(j); !errors.Is(err, ErrConflict) {
				t.Errorf("%s then %s: err = %v, want CONFLICT", name, move, err)
			}
			if j.Status != before.Status || j.Error != before.Error {
				t.Errorf("%s then %s changed the job to %s", name, move, j.Status)
			}
		}
	}

	j := running()
	if j.Attempts != 1 || j.StartedAt == nil {
		t.Fatalf("after start: %+v", j)
	}
	j.TotalRows, j.RowCount = 200, 50
	if p := j.Progress(); p != 0.25 {
		t.Fatalf("progress = %v", p)
	}
	if err := j.Requeue("instance stopped"); err != nil || j.Status != ExportQueued {
		t.Fatalf("requeue: %v %s", err, j.Status)
	}
	if err := j.Start(now); err != nil || j.Attempts != 2 || j.RowCount != 0 || j.Error != "" {
		t.Fatalf("second start: %v %+v", err, j)
	}
	if err := j.Succeed(7, 99, now, now.Add(time.Hour)); err != nil || j.Progress() != 1 || j.RowCount != 7 {
		t.Fatalf("succeed: %v %+v", err, j)
	}
	if j.Expired(now) || !j.Expired(now.Add(time.Hour)) {
		t.Fatal("expiry is wrong")
	}
}
