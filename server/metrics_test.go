package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
)

// scrape reads /metrics and returns the value of each series named, keyed
// by its family and its labels ("name" or "name{k=v}" with one label).
func scrape(t *testing.T, env *testenv.Env) map[string]float64 {
	t.Helper()
	resp, err := http.Get(env.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			key := name
			for _, l := range m.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			out[key] = value(f.GetType(), m)
		}
	}
	return out
}

func value(t dto.MetricType, m *dto.Metric) float64 {
	switch t {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_HISTOGRAM:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return -1
}

// TestMetrics records good, bad and duplicate events and checks that the
// outcomes, the projection's progress, the live subscriptions and the HTTP
// requests show on /metrics, and that no series names an organization.
func TestMetrics(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	now := time.Now()
	good := []map[string]any{userCreated("acme", now, "a@acme.example"), userCreated("acme", now, "b@acme.example")}
	bad := userCreated("acme", now, "c@acme.example")
	bad["type"] = "USER_CREATED"
	bad["details"] = map[string]any{"userId": "u-c"} // userEmail is required
	record(t, env, append(good, bad))
	record(t, env, good[:1]) // a re-send

	env.WaitProjected(t)
	got := scrape(t, env)
	want := map[string]float64{
		"auditlog_ingest_events_total{status=RECORDED}":            2,
		"auditlog_ingest_events_total{status=REJECTED}":            1,
		"auditlog_ingest_events_total{status=DUPLICATE}":           1,
		"auditlog_projection_lag_messages{stream=AUDIT_US}":        0,
		"auditlog_live_subscriptions":                              0,
		"auditlog_http_requests_total{code=200}{route=/query}":     2, // the two record calls at least
		"auditlog_http_request_duration_seconds{route=/query}":     2,
		"auditlog_stream_last_sequence{stream=AUDIT_US}":           3, // the opt-in and two events
		"auditlog_projection_checkpoint_sequence{stream=AUDIT_US}": 3,
	}
	for key, w := range want {
		g, ok := got[key]
		switch {
		case !ok:
			t.Errorf("%s missing", key)
		case key == "auditlog_http_requests_total{code=200}{route=/query}" || key == "auditlog_http_request_duration_seconds{route=/query}":
			if g < w {
				t.Errorf("%s = %v, want at least %v", key, g, w)
			}
		case g != w:
			t.Errorf("%s = %v, want %v", key, g, w)
		}
	}
	for key := range got {
		if strings.Contains(key, "acme") {
			t.Errorf("series %s names an organization", key)
		}
	}
}
