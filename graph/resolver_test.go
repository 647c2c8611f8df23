package graph

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/domain"
)

func TestDownloadURLIsAbsolute(t *testing.T) {
	now := time.Now()
	job := &domain.ExportJob{ID: "01JDQ8Z6V1K9E3M4N5P6Q7R8S9", OrgID: "acme", Status: domain.ExportSucceeded,
		ExpiresAt: ptr(now.Add(time.Hour))}
	for _, tc := range []struct{ public, origin, want string }{
		{"", "http://127.0.0.1:8080", "http://127.0.0.1:8080/exports/01JDQ8Z6V1K9E3M4N5P6Q7R8S9?token="},
		{"https://audit.example.com/", "http://10.0.0.1:8080", "https://audit.example.com/exports/01JDQ8Z6V1K9E3M4N5P6Q7R8S9?token="},
		{"https://example.com/audit", "", "https://example.com/audit/exports/01JDQ8Z6V1K9E3M4N5P6Q7R8S9?token="},
	} {
		r := &Resolver{Downloads: auth.NewDownloadSigner([]byte("k"), time.Now), DownloadPath: "/exports/", PublicURL: tc.public, Now: time.Now}
		x, err := r.presentJob(WithOrigin(context.Background(), tc.origin), job)
		if err != nil || x.DownloadURL == nil || !strings.HasPrefix(*x.DownloadURL, tc.want) {
			t.Errorf("public %q, origin %q: %v, %v", tc.public, tc.origin, x.DownloadURL, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }
