package logstream

import (
	"slices"
	"testing"
)

func TestSplit(t *testing.T) {
	size := func(n int) int { return n }
	tests := []struct {
		name  string
		items []int // each item's size
		lim   Limits
		want  [][]int
	}{
		{"empty", nil, Limits{MaxEvents: 2, MaxBytes: 10}, nil},
		{"no limits", []int{1, 2, 3}, Limits{}, [][]int{{1, 2, 3}}},
		{"events only", []int{1, 1, 1, 1, 1}, Limits{MaxEvents: 2}, [][]int{{1, 1}, {1, 1}, {1}}},
		{"events exact", []int{1, 1, 1, 1}, Limits{MaxEvents: 2}, [][]int{{1, 1}, {1, 1}}},
		{"bytes only", []int{4, 4, 4}, Limits{MaxBytes: 8}, [][]int{{4, 4}, {4}}},
		{"bytes exact fit", []int{3, 5, 8}, Limits{MaxBytes: 8}, [][]int{{3, 5}, {8}}},
		{"bytes one over", []int{3, 6}, Limits{MaxBytes: 8}, [][]int{{3}, {6}}},
		{"bytes bind before events", []int{5, 5, 1, 1}, Limits{MaxEvents: 3, MaxBytes: 10}, [][]int{{5, 5}, {1, 1}}},
		{"events bind before bytes", []int{1, 1, 1, 1}, Limits{MaxEvents: 3, MaxBytes: 100}, [][]int{{1, 1, 1}, {1}}},
		{"oversized alone", []int{2, 20, 2}, Limits{MaxEvents: 10, MaxBytes: 10}, [][]int{{2}, {20}, {2}}},
		{"oversized first", []int{20, 2, 2}, Limits{MaxBytes: 10}, [][]int{{20}, {2, 2}}},
		{"oversized only", []int{20}, Limits{MaxBytes: 10}, [][]int{{20}}},
		{"one event per batch", []int{1, 2, 3}, Limits{MaxEvents: 1}, [][]int{{1}, {2}, {3}}},
		{"zero sizes", []int{0, 0, 0}, Limits{MaxBytes: 1}, [][]int{{0, 0, 0}}},
	}
	for _, tt := range tests {
		got := Split(tt.items, tt.lim, size)
		if !slices.EqualFunc(got, tt.want, slices.Equal) {
			t.Errorf("%s: Split(%v, %+v) = %v, want %v", tt.name, tt.items, tt.lim, got, tt.want)
		}
		// Nothing lost, nothing reordered.
		if flat := slices.Concat(got...); !slices.Equal(flat, tt.items) && len(tt.items) > 0 {
			t.Errorf("%s: batches %v do not add up to %v", tt.name, got, tt.items)
		}
	}
}

// A batch is a full slice expression: appending to one must not overwrite
// the next.
func TestSplitBatchesDoNotAlias(t *testing.T) {
	items := []int{1, 2, 3, 4}
	b := Split(items, Limits{MaxEvents: 2}, func(int) int { return 1 })
	_ = append(b[0], 99)
	if b[1][0] != 3 {
		t.Fatalf("appending to the first batch changed the second: %v", b)
	}
}
