package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/domain"
)

func TestTokenCommand(t *testing.T) {
	v := auth.NewHMACVerifier([]byte("s3cret"))
	tests := []struct {
		args  []string
		check func(*domain.Principal) bool
	}{
		{[]string{"--org", "acme", "--role", "ADMIN", "--email", "a@acme.example"}, func(p *domain.Principal) bool {
			return p.IsAdmin() && p.OrgID == "acme" && p.Email == "a@acme.example"
		}},
		{[]string{"--org", "acme", "--role", "user"}, func(p *domain.Principal) bool { return !p.IsAdmin() && p.Kind == domain.PrincipalUser }},
		{[]string{"--role", "SERVICE", "--sources", "PLATFORM,INSIGHT_VM"}, func(p *domain.Principal) bool {
			return p.Kind == domain.PrincipalService && slices.Equal(p.Sources, []domain.Source{"PLATFORM", "INSIGHT_VM"}) && len(p.Orgs) == 0
		}},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		args := append([]string{"token", "--jwt-secret", "s3cret"}, tc.args...)
		if err := run(context.Background(), args, &out, &out); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		p, err := v.Verify(lines[len(lines)-1])
		if err != nil || !tc.check(p) {
			t.Fatalf("%v: token gives %+v, %v", tc.args, p, err)
		}
	}
	for _, bad := range [][]string{
		{"token", "--role", "ADMIN"},
		{"token", "--org", "acme", "--role", "ROOT"},
		{"token", "--role", "SERVICE", "--sources", "NOPE"},
		{"frobnicate"},
		{},
	} {
		if err := run(context.Background(), bad, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}
