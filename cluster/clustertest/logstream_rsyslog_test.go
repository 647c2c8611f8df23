//go:build rsyslog

package clustertest

import (
	"testing"

	"github.com/auditlog/auditlog/internal/testenv"
)

// TestSyslogInstanceLossMidBatch is TestInstanceLossMidLogStreamBatch for
// a real rsyslogd, which writes the batch in flight: its sender, killed
// before rsyslog's close confirmed it, never counted it delivered, so the
// survivor sends it again under the same ids.
func TestSyslogInstanceLossMidBatch(t *testing.T) {
	skipShort(t)
	instanceLossMidLogStreamBatch(t, testenv.SinkSyslog)
}
