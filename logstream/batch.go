package logstream

// Limits bound one request to a destination: at most MaxEvents events and
// MaxBytes bytes of encoded events (the envelope around them is not
// counted; keep a margin). Zero means no limit of that kind.
type Limits struct {
	MaxEvents int
	MaxBytes  int
}

// Split cuts items into consecutive batches, in order, each within lim,
// where an item weighs size(item) bytes. An item larger than MaxBytes on
// its own goes alone in its batch rather than being dropped: the
// destination decides whether it takes it. The cut depends only on the
// items and lim, so a retried batch is cut the same way.
func Split[T any](items []T, lim Limits, size func(T) int) [][]T {
	var out [][]T
	start, bytes := 0, 0
	for i, it := range items {
		n := size(it)
		full := i > start && (lim.MaxEvents > 0 && i-start >= lim.MaxEvents ||
			lim.MaxBytes > 0 && bytes+n > lim.MaxBytes)
		if full {
			out = append(out, items[start:i:i])
			start, bytes = i, 0
		}
		bytes += n
	}
	if start < len(items) {
		out = append(out, items[start:len(items):len(items)])
	}
	return out
}
