// Package treelog formats and checks what the audit log's Merkle trees
// publish: checkpoints in the C2SP tlog-checkpoint format, signed as notes
// (golang.org/x/mod/sumdb/note). Checking needs nothing but the verifier
// key, so outside verifiers and `auditd verify` work offline with it.
package treelog

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// OriginPrefix starts every origin line: an organization's log is
// "auditlog/<region in lower case>/<org>", e.g. auditlog/us/acme. The
// region is part of it because an organization's log lives in one region
// for ever, and one key signs the checkpoints of every organization.
const OriginPrefix = "auditlog/"

// Origin is the origin line of org's log in region (lower case, e.g. "us").
func Origin(region, org string) string { return OriginPrefix + region + "/" + org }

// Checkpoint is a tree head: the size and root hash of one log.
type Checkpoint struct {
	Origin string
	Size   int64
	Hash   tlog.Hash
}

// Text is the checkpoint's note text: origin, size, base64 root hash, one a
// line (C2SP tlog-checkpoint, no extension lines).
func (c Checkpoint) Text() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Hash[:]))
}

// ErrMalformed is a checkpoint or proof text that does not parse.
var ErrMalformed = errors.New("malformed checkpoint")

// ParseCheckpoint parses a checkpoint note text (its body, without
// signatures). Extension lines after the root hash are allowed and ignored.
func ParseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" || lines[0] == "" {
		return Checkpoint{}, ErrMalformed
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("%w: tree size %q", ErrMalformed, lines[1])
	}
	h, err := ParseHash(lines[2])
	if err != nil {
		return Checkpoint{}, err
	}
	return Checkpoint{Origin: lines[0], Size: size, Hash: h}, nil
}

// ParseHash parses a base64 hash of a checkpoint or a proof.
func ParseHash(s string) (tlog.Hash, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != tlog.HashSize {
		return tlog.Hash{}, fmt.Errorf("%w: hash %q", ErrMalformed, s)
	}
	return tlog.Hash(b), nil
}

// ParseHashes parses the base64 hashes of a proof.
func ParseHashes(ss []string) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(ss))
	for i, s := range ss {
		h, err := ParseHash(s)
		if err != nil {
			return nil, err
		}
		out[i] = h
	}
	return out, nil
}

// EncodeHashes is hs in base64, as the API and exports give proofs.
func EncodeHashes(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

// Sign signs c as a note with signer and returns the note's text.
func Sign(c Checkpoint, signer note.Signer) (string, error) {
	msg, err := note.Sign(&note.Note{Text: c.Text()}, signer)
	if err != nil {
		return "", fmt.Errorf("sign checkpoint: %w", err)
	}
	return string(msg), nil
}

// Open checks the signature of a signed checkpoint note with verifierKey
// and returns the checkpoint.
func Open(signed, verifierKey string) (Checkpoint, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("verifier key: %w", err)
	}
	n, err := note.Open([]byte(signed), note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint signature: %w", err)
	}
	return ParseCheckpoint(n.Text)
}

// CheckConsistency checks that the log of newer grew from the log of older
// by appending only: both have the same origin and proof proves the older
// tree a prefix of the newer one. Either checkpoint must already be opened.
func CheckConsistency(older, newer Checkpoint, proof []tlog.Hash) error {
	if older.Origin != newer.Origin {
		return fmt.Errorf("checkpoints of %q and %q are of different logs", older.Origin, newer.Origin)
	}
	if older.Size > newer.Size {
		return fmt.Errorf("older checkpoint has %d leaves, newer %d", older.Size, newer.Size)
	}
	if older.Size == newer.Size || older.Size == 0 {
		if older.Size == newer.Size && older.Hash != newer.Hash {
			return fmt.Errorf("two roots for tree size %d: the log forked", older.Size)
		}
		return nil
	}
	if err := tlog.CheckTree(proof, newer.Size, newer.Hash, older.Size, older.Hash); err != nil {
		return fmt.Errorf("tree of %d leaves is not a prefix of the tree of %d: %w", older.Size, newer.Size, err)
	}
	return nil
}

// OpenNote checks the signature of any note the log signs with verifierKey
// and returns its text.
func OpenNote(signed, verifierKey string) (string, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return "", fmt.Errorf("verifier key: %w", err)
	}
	n, err := note.Open([]byte(signed), note.VerifierList(v))
	if err != nil {
		return "", fmt.Errorf("signature: %w", err)
	}
	return n.Text, nil
}
