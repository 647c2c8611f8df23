package server_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
)

const recordMutation = `mutation($events: [AuditEventInput!]!) {
  recordAuditEvents(events: $events) { results { id status reason } }
}`

type recordResult struct {
	ID     string
	Status string
	Reason *string
}

func record(t *testing.T, env *testenv.Env, events []map[string]any) []recordResult {
	t.Helper()
	r := env.Do(t, testenv.ServiceToken(t), recordMutation, map[string]any{"events": events})
	var out struct {
		RecordAuditEvents struct{ Results []recordResult }
	}
	r.MustData(t, &out)
	return out.RecordAuditEvents.Results
}

func userCreated(org, id string, at time.Time, email string) map[string]any {
	return map[string]any{
		"id": id, "orgId": org, "type": "USER_CREATED", "source": "PLATFORM",
		"occurredAt": at.Format(time.RFC3339Nano),
		"actor":      map[string]any{"kind": "USER", "id": "u-admin", "name": "Grace Hopper", "email": "grace@example.com"},
		"target":     map[string]any{"kind": "USER", "id": "u-" + email, "name": email},
		"details":    map[string]any{"userId": "u-" + email, "userEmail": email},
	}
}

func TestRecordAndQuery(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	res := record(t, env, []map[string]any{
		userCreated("acme", "01JDQ8Z6V1K9E3M4N5P6Q7R8S9", base, "linus@example.com"),
		userCreated("acme", "01JDQ8Z6V1K9E3M4N5P6Q7R8SA", base.Add(time.Minute), "ken@example.com"),
	})
	for _, r := range res {
		if r.Status != "RECORDED" {
			t.Fatalf("result %+v", r)
		}
	}
	env.WaitProjected(t)
	q := env.Do(t, testenv.AdminToken(t, "acme"), `{ auditEvents(first: 10) { totalCount edges { node { id type description actor { name email } ... on UserEvent { userEmail } details } } } }`, nil)
	var out struct {
		AuditEvents struct {
			TotalCount int
			Edges      []struct {
				Node struct {
					ID, Type, Description, UserEmail string
					Details                          json.RawMessage
				}
			}
		}
	}
	q.MustData(t, &out)
	t.Logf("%s", q.Data)
}
