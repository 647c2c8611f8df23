//go:build rsyslog

package delivery_test

import (
	"testing"

	"github.com/auditlog/auditlog/internal/testenv"
)

// TestSyslogOrderAcrossOutages is TestOrderAcrossOutages for a real
// rsyslogd behind a proxy that cuts, freezes and refuses its connections.
func TestSyslogOrderAcrossOutages(t *testing.T) {
	orderAcrossOutages(t, testenv.SinkSyslog)
}
