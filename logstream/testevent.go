package logstream

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/auditlog/auditlog/domain"
)

// TestEventType is the type of the event Test sends. It is not in the
// catalog: no real event can be mistaken for it.
const TestEventType domain.EventType = "LOG_STREAM_TEST"

// TestEvent is the event a Sender's Test delivers: recorded now by the
// audit log itself, with a fresh id and no leaf index, since it is not in
// the log.
func TestEvent(orgID string, now time.Time) *domain.Event {
	return &domain.Event{
		ID: "test-" + uuid.NewString(), OrgID: orgID, Source: domain.SourcePlatform, Type: TestEventType,
		OccurredAt: now.UTC(), RecordedAt: now.UTC(),
		Actor:   domain.Actor{Kind: domain.ActorSystem, ID: "auditlog", Name: "Audit Log"},
		Details: json.RawMessage(`{"message":"A test event from an audit log stream. It is not part of the log."}`),
	}
}
