package graph

import (
	"context"
	"errors"
	"testing"
	"time"

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
