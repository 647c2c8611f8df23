package ndjson

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/treelog"
)

// Files with a version 1 or 2 manifest, written before version 3, prove
// each event on its own line: the line carries the event's record and its
// inclusion proof. Verify still reads them; nothing writes them any more.

// provedLineV2 is an event line of a version 1 or 2 file.
type provedLineV2 struct {
	ndjsonEvent
	N         int64    `json:"n"`
	LeafIndex int64    `json:"leafIndex"`
	Record    []byte   `json:"record"`
	Proof     []string `json:"proof"`
}

// encodeLineV2 is the one encoding of an event line of a version 1 or 2
// file.
func encodeLineV2(w io.Writer, n, leaf int64, record []byte, proof []string) error {
	var e domain.Event
	if err := json.Unmarshal(record, &e); err != nil {
		return fmt.Errorf("record is not an event: %w", err)
	}
	return json.NewEncoder(w).Encode(provedLineV2{ndjsonEvent: showEvent(&e), N: n, LeafIndex: leaf, Record: record, Proof: proof})
}

// manifestTextV1 is a version 1 manifest's text.
func manifestTextV1(cp treelog.Checkpoint, n int64, digest []byte) string {
	return fmt.Sprintf("%s\n%s\n%d\n%d\n%s\n", manifestHeaderV1, cp.Origin, cp.Size, n, base64.StdEncoding.EncodeToString(digest))
}

// verifyProvedLines verifies the lines after the header of a version 1 or
// 2 file, whose checkpoint cp is.
func verifyProvedLines(sc *bufio.Scanner, cp treelog.Checkpoint, verifierKey string) (*Verified, error) {
	org := orgOf(cp)
	digest := sha256.New()
	var n int64
	var buf bytes.Buffer
	var leaves leafSpan
	seen := make([]uint64, (cp.Size+63)/64) // leaves present, to tell a whole log
	distinct := true
	line := 1
	for sc.Scan() {
		line++
		raw := append(sc.Bytes(), '\n')
		var l struct {
			N         *int64   `json:"n"`
			LeafIndex int64    `json:"leafIndex"`
			Record    []byte   `json:"record"`
			Proof     []string `json:"proof"`
			Manifest  *string  `json:"manifest"`
		}
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, bad(line, "not JSON: %v", err)
		}
		if l.Manifest != nil {
			if sc.Scan() {
				return nil, bad(line+1, "a line after the manifest")
			}
			v := &Verified{Checkpoint: cp, Events: n, FirstLeaf: -1, LastLeaf: -1}
			if leaves.any {
				v.FirstLeaf, v.LastLeaf = leaves.first, leaves.last
			}
			if err := checkManifestV2(v, *l.Manifest, verifierKey, digest.Sum(nil), leaves, line); err != nil {
				return nil, err
			}
			v.judge(distinct)
			return v, nil
		}
		n++
		if l.N == nil || *l.N != n {
			return nil, bad(line, "is event %v of the export where event %d should be: a line is missing, added or moved before it", deref(l.N), n)
		}
		var e struct{ OrgID string }
		if json.Unmarshal(l.Record, &e) != nil || e.OrgID != org {
			return nil, bad(line, "record is not an event of %s", cp.Origin)
		}
		buf.Reset()
		if err := encodeLineV2(&buf, n, l.LeafIndex, l.Record, l.Proof); err != nil {
			return nil, bad(line, "%v", err)
		}
		if !bytes.Equal(buf.Bytes(), raw) {
			return nil, bad(line, "field %s differs from the event's record", firstDifference(buf.Bytes(), raw))
		}
		proof, err := treelog.ParseHashes(l.Proof)
		if err != nil {
			return nil, bad(line, "proof: %v", err)
		}
		if err := tlog.CheckRecord(proof, cp.Size, cp.Hash, l.LeafIndex, tlog.RecordHash(l.Record)); err != nil {
			return nil, bad(line, "record is not leaf %d of the checkpoint's tree of %d: %v", l.LeafIndex, cp.Size, err)
		}
		if seen[l.LeafIndex/64]&(1<<(l.LeafIndex%64)) != 0 {
			distinct = false
		}
		seen[l.LeafIndex/64] |= 1 << (l.LeafIndex % 64)
		leaves.add(l.LeafIndex)
		digest.Write(raw)
	}
	if err := sc.Err(); err != nil {
		return nil, bad(line+1, "%v", err)
	}
	return nil, bad(line+1, "the file ends without its manifest: lines are missing at its end")
}

// checkManifestV2 checks a version 1 or 2 manifest against what the lines
// gave, and fills in v's version and filter from it.
func checkManifestV2(v *Verified, msg, verifierKey string, digest []byte, leaves leafSpan, line int) error {
	m, err := treelog.OpenNote(msg, verifierKey)
	if err != nil {
		return bad(line, "manifest: %v", err)
	}
	var want string
	switch {
	case strings.HasPrefix(m, manifestHeaderV1+"\n"):
		v.Manifest = 1
		want = manifestTextV1(v.Checkpoint, v.Events, digest)
	case strings.HasPrefix(m, manifestHeaderV2+"\n"):
		// The filter is the one line the file does not tell: take it from
		// the signed text, and check the rest against the file.
		v.Manifest = 2
		var f domain.Filter
		raw := manifestLine(m, "filter ")
		if err := json.Unmarshal([]byte(raw), &f); err != nil {
			return bad(line, "the manifest records no readable filter")
		}
		v.Filter = &f
		want = manifestText(manifestHeaderV2, v.Checkpoint, v.Events, digest, raw, leaves)
	default:
		return bad(line, "the manifest is not a version 1 or 2 manifest, as the header says")
	}
	if m != want {
		return bad(line, "the manifest signed %q, the file has %q: lines were changed, added or removed", m, want)
	}
	return nil
}
