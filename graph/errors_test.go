package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
)

// TestErrorsCarryTheRetryHint checks that an overloaded refusal reaches the
// client with its code and retryAfter in seconds, and that other errors
// carry no retry hint.
func TestErrorsCarryTheRetryHint(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		code      string
		wantRetry any
	}{
		{"overloaded", domain.Overloaded("busy", 1500*time.Millisecond, errors.New("stalled")), "UNAVAILABLE", 1.5},
		{"unavailable without a hint", domain.Unavailable("down", errors.New("x")), "UNAVAILABLE", nil},
		{"bad input", domain.BadInput("events", "too many"), "BAD_USER_INPUT", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ErrorPresenter()(context.Background(), tc.err)
			if got.Extensions["code"] != tc.code || got.Extensions["retryAfter"] != tc.wantRetry {
				t.Fatalf("extensions %v; want code %s, retryAfter %v", got.Extensions, tc.code, tc.wantRetry)
			}
		})
	}
}

// TestCancelledRequestsAreNotErrors: a resolver error from a request its
// client abandoned is logged at debug level, not as an internal error;
// the same error while the request is live still is one.
func TestCancelledRequestsAreNotErrors(t *testing.T) {
	tests := []struct {
		name      string
		cancelled bool
		wantLevel string
		wantMsg   string
	}{
		{"client went away", true, "debug", "request cancelled"},
		{"cancelled while the request is live", false, "error", "internal error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logged bytes.Buffer
			ctx, cancel := context.WithCancel(zerolog.New(&logged).WithContext(context.Background()))
			defer cancel()
			if tc.cancelled {
				cancel()
			}
			err := &internalError{err: fmt.Errorf("count events: %w", context.Canceled)}
			got := ErrorPresenter()(ctx, err)
			if got.Message != tc.wantMsg || got.Extensions["code"] != "INTERNAL" {
				t.Fatalf("presented %q %v", got.Message, got.Extensions)
			}
			if !strings.Contains(logged.String(), `"level":"`+tc.wantLevel+`"`) {
				t.Fatalf("logged %s; want level %s", logged.String(), tc.wantLevel)
			}
		})
	}
}
