package natsx_test

import (
	"testing"

	"github.com/auditlog/auditlog/natsx"
)

// DescribeChange names each difference in a stream's layout, old value
// first, and nothing when the layouts agree.
func TestDescribeChange(t *testing.T) {
	eu := []string{"region:eu"}
	tests := []struct {
		name       string
		have, want natsx.Layout
		desc       string
	}{
		{"same", natsx.Layout{Replicas: 3, Tags: eu}, natsx.Layout{Replicas: 3, Tags: eu}, ""},
		{"zero replicas is one", natsx.Layout{}, natsx.Layout{Replicas: 1}, ""},
		{"tag order does not matter", natsx.Layout{Tags: []string{"a", "b"}}, natsx.Layout{Tags: []string{"b", "a"}}, ""},
		{"more replicas", natsx.Layout{Replicas: 1}, natsx.Layout{Replicas: 3}, "replicas 1 → 3"},
		{"fewer replicas", natsx.Layout{Replicas: 3}, natsx.Layout{Replicas: 1}, "replicas 3 → 1"},
		{"placement added", natsx.Layout{Replicas: 3}, natsx.Layout{Replicas: 3, Tags: eu}, "placement none → region:eu"},
		{"placement removed", natsx.Layout{Replicas: 1, Tags: eu}, natsx.Layout{Replicas: 1}, "placement region:eu → none"},
		{"both", natsx.Layout{Replicas: 1}, natsx.Layout{Replicas: 3, Tags: eu},
			"replicas 1 → 3, placement none → region:eu"},
		{"other tags", natsx.Layout{Replicas: 2, Tags: eu}, natsx.Layout{Replicas: 2, Tags: []string{"region:us", "ssd"}},
			"placement region:eu → region:us,ssd"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := natsx.DescribeChange(tc.have, tc.want); got != tc.desc {
				t.Errorf("DescribeChange(%v, %v) = %q, want %q", tc.have, tc.want, got, tc.desc)
			}
		})
	}
}

// A layout prints as the startup error and warning show it.
func TestLayoutString(t *testing.T) {
	tests := []struct {
		l    natsx.Layout
		want string
	}{
		{natsx.Layout{}, "replicas 1, placement none"},
		{natsx.Layout{Replicas: 3, Tags: []string{"region:eu"}}, "replicas 3, placement region:eu"},
	}
	for _, tc := range tests {
		if got := tc.l.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.l, got, tc.want)
		}
	}
}
