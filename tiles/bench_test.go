package tiles_test

import (
	"context"
	"testing"

	"github.com/auditlog/auditlog/tiles"
)

// BenchmarkAppendBatch measures the Go side of a projected batch per leaf:
// the stored hashes of each new leaf of a 600-byte record over the
// in-memory overlay, and the tiles the batch changed, in batches of 1,000
// leaves of one organization (no database: a tree grown from empty never
// reads one).
func BenchmarkAppendBatch(b *testing.B) {
	record := make([]byte, 600)
	h := tiles.NewHashes(context.Background(), nil, "audit_us", "acme", nil)
	b.ReportAllocs()
	n := int64(0)
	for b.Loop() {
		old := n
		for range 1000 {
			record[0], record[1], record[2] = byte(n), byte(n>>8), byte(n>>16)
			if err := h.Append(n, record); err != nil {
				b.Fatal(err)
			}
			n++
		}
		if _, err := h.Tiles(old, n); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n)/1e3, "µs/leaf")
}
