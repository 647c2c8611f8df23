package readmodel

import (
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// BenchmarkTreeAppend measures the Go side of the tree per event: the
// stored hashes of one new leaf of a 600-byte record, read from an overlay
// as Apply's are, and how many bytes of tiles a leaf adds.
func BenchmarkTreeAppend(b *testing.B) {
	record := make([]byte, 600)
	var stored []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	b.ReportAllocs()
	for n := range int64(b.N) {
		record[0], record[1], record[2] = byte(n), byte(n>>8), byte(n>>16)
		hs, err := tlog.StoredHashes(n, record, r)
		if err != nil {
			b.Fatal(err)
		}
		stored = append(stored, hs...)
	}
	// The tiles keep the leaf hashes (32 bytes each) and every 256th hash
	// of the levels above; Postgres adds its TOAST chunk headers (a full
	// tile of 8 KiB takes five chunks of about 2 KiB), measured about 36
	// bytes a leaf in TestUpgradeTurnsTreeHashesIntoTiles.
	perLeaf := float64(len(stored)) / float64(b.N)
	b.ReportMetric(perLeaf, "hashes/leaf")
	b.ReportMetric(32*(1+1.0/255)*1e6/(1<<20), "MiB-tiles/1M-events")
}
