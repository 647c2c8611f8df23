package natsx

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Ensure asks again when JetStream gave no answer or one that will change
// by itself, never when it refused for good.
func TestUnanswered(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"timeout", fmt.Errorf("create: %w", context.DeadlineExceeded), true},
		{"nats timeout", nats.ErrTimeout, true},
		{"no responders", nats.ErrNoResponders, true},
		{"temporarily unavailable", &jetstream.APIError{Code: 503, ErrorCode: jsClusterNotAvailable}, true},
		{"peer offline", &jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement, peer offline"}, true},
		{"tags not matched", &jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement, tags not matched ['region:eu']"}, false},
		{"insufficient resources", &jetstream.APIError{Code: 503, ErrorCode: 10023}, false},
		{"other", errors.New("permissions violation"), false},
	}
	for _, tc := range tests {
		if got := unanswered(tc.err); got != tc.want {
			t.Errorf("%s: unanswered(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
