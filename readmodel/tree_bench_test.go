package readmodel

import (
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// BenchmarkTreeAppend measures the Go side of the tree per event: the
// stored hashes of one new leaf of a 600-byte record, read from an overlay
// as Apply's are, and how many bytes of tree_hashes rows a leaf adds.
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
	// A tree_hashes row is org_id, idx and a 32-byte hash: with Postgres's
	// 24-byte tuple header, 4-byte item pointer and a short org id about 80
	// bytes, plus its primary key entry (about 48 bytes).
	perLeaf := float64(len(stored)) / float64(b.N)
	b.ReportMetric(perLeaf, "hashes/leaf")
	b.ReportMetric(perLeaf*(80+48)*1e6/(1<<20), "MiB-tree_hashes/1M-events")
}
