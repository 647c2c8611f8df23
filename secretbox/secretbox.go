// Package secretbox encrypts log stream destination secrets (webhook signing
// secrets, Splunk tokens) before they are stored, with the key auditd is
// given in AUDITD_ENCRYPTION_KEY: a database dump or backup alone does not
// give away credentials to an organization's SIEM.
//
// A sealed secret is AES-256-GCM ciphertext bound to its organization and
// stream (additional authenticated data), so a row copied to another stream
// or organization does not open. It starts with a format version and the
// id of the key that sealed it, so that a new key can be introduced while
// secrets sealed with the old one still open (New takes the old keys too).
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the length of a key: AES-256.
const KeySize = 32

// version is the first byte of a sealed secret.
const version byte = 1

// header is the version byte and the 4-byte key id.
const header = 1 + 4

// ErrOpen is returned for any sealed secret that does not open: tampered,
// truncated, sealed with a key Box lacks, or for another org or stream. The
// cases are not told apart, and the error never holds the secret.
var ErrOpen = errors.New("secretbox: the sealed secret does not open with this key for this organization and stream")

// Box seals and opens secrets. Build it with New; it is safe for concurrent
// use.
type Box struct {
	current [4]byte
	keys    map[[4]byte]cipher.AEAD
}

// ParseKey decodes a key in the form of AUDITD_ENCRYPTION_KEY: 32 bytes in
// standard or URL-safe base64. The error never repeats the input.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("secretbox: the key is %d bytes, want %d (generate one with: openssl rand -base64 32)", len(k), KeySize)
			}
			return k, nil
		}
	}
	return nil, errors.New("secretbox: the key is not base64 (generate one with: openssl rand -base64 32)")
}

// New returns a Box that seals with current and opens what current or any
// of previous sealed. Pass previous keys while rotating, until every stored
// secret has been sealed again with current.
func New(current []byte, previous ...[]byte) (*Box, error) {
	b := &Box{keys: make(map[[4]byte]cipher.AEAD, 1+len(previous))}
	for i, k := range append([][]byte{current}, previous...) {
		if len(k) != KeySize {
			return nil, fmt.Errorf("secretbox: key %d is %d bytes, want %d", i, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("secretbox: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("secretbox: %w", err)
		}
		id := keyID(k)
		if i == 0 {
			b.current = id
		}
		b.keys[id] = aead
	}
	return b, nil
}

// keyID names a key without revealing it: the first four bytes of an HMAC of
// a fixed label under the key.
func keyID(k []byte) [4]byte {
	m := hmac.New(sha256.New, k)
	m.Write([]byte("auditlog secretbox key id v1"))
	return [4]byte(m.Sum(nil))
}

// KeyID is the id of the key that sealed s, so a job re-sealing secrets
// after a rotation can skip those already under the current key.
func KeyID(sealed []byte) (id [4]byte, ok bool) {
	if len(sealed) < header || sealed[0] != version {
		return id, false
	}
	return [4]byte(sealed[1:header]), true
}

// CurrentKeyID is the id of the key Seal uses.
func (b *Box) CurrentKeyID() [4]byte { return b.current }

// aad binds a sealed secret to its header, organization and stream; the
// lengths keep ("ab","c") from matching ("a","bc").
func aad(hdr []byte, orgID, streamID string) []byte {
	out := append([]byte(nil), hdr...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(orgID)))
	out = append(out, orgID...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(streamID)))
	return append(out, streamID...)
}

// Seal encrypts plaintext for the stream streamID of organization orgID.
// The result is version, key id, nonce and ciphertext, to store as bytes.
func (b *Box) Seal(plaintext []byte, orgID, streamID string) ([]byte, error) {
	aead := b.keys[b.current]
	out := make([]byte, header, header+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = version
	copy(out[1:header], b.current[:])
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("secretbox: nonce: %w", err)
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plaintext, aad(out[:header], orgID, streamID)), nil
}

// Open decrypts what Seal returned for the same organization and stream,
// or returns ErrOpen.
func (b *Box) Open(sealed []byte, orgID, streamID string) ([]byte, error) {
	id, ok := KeyID(sealed)
	if !ok {
		return nil, ErrOpen
	}
	aead, ok := b.keys[id]
	if !ok || len(sealed) < header+aead.NonceSize()+aead.Overhead() {
		return nil, ErrOpen
	}
	nonce := sealed[header : header+aead.NonceSize()]
	pt, err := aead.Open(nil, nonce, sealed[header+aead.NonceSize():], aad(sealed[:header], orgID, streamID))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// DevKeyFile is the development key's file in auditd's data directory.
const DevKeyFile = "encryption.key"

// DevKey reads the development key kept in dir, generating one (0600) the
// first time; created says it was just made. It serves a single instance
// with the embedded NATS (`make run`) when AUDITD_ENCRYPTION_KEY is unset:
// secrets sealed with it open only where that file is.
func DevKey(dir string) (key []byte, created bool, err error) {
	path := filepath.Join(dir, DevKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := ParseKey(string(b))
		return k, false, err
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("encryption key: %w", err)
	}
	key = make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("encryption key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("encryption key: %w", err)
	}
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, false, fmt.Errorf("encryption key: %w", err)
	}
	return key, true, nil
}
