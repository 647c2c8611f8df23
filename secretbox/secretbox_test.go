package secretbox

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func key(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := key(t)
	b, err := New(k)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("whsec_c2VjcmV0IHNpZ25pbmcga2V5")
	sealed, err := b.Seal(secret, "org-1", "stream-1")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatal("the sealed secret holds the plaintext")
	}
	again, _ := b.Seal(secret, "org-1", "stream-1")
	if bytes.Equal(sealed, again) {
		t.Fatal("two seals of one secret are equal: the nonce is not random")
	}
	got, err := b.Open(sealed, "org-1", "stream-1")
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v; want %q", got, err, secret)
	}
	if id, ok := KeyID(sealed); !ok || id != b.CurrentKeyID() {
		t.Fatalf("KeyID = %x, %v; want %x", id, ok, b.CurrentKeyID())
	}
	empty, _ := b.Seal(nil, "org-1", "stream-1")
	if got, err := b.Open(empty, "org-1", "stream-1"); err != nil || len(got) != 0 {
		t.Fatalf("empty secret: %q, %v", got, err)
	}

	other, _ := New(key(t))
	flip := func(i int) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= 1
		return c
	}
	bad := []struct {
		name          string
		box           *Box
		sealed        []byte
		org, streamID string
	}{
		{"wrong key", other, sealed, "org-1", "stream-1"},
		{"wrong org", b, sealed, "org-2", "stream-1"},
		{"wrong stream", b, sealed, "org-1", "stream-2"},
		{"org and stream boundary moved", b, sealed, "org-1s", "tream-1"},
		{"version changed", b, flip(0), "org-1", "stream-1"},
		{"key id changed", b, flip(2), "org-1", "stream-1"},
		{"nonce changed", b, flip(header + 1), "org-1", "stream-1"},
		{"ciphertext changed", b, flip(header + 12 + 1), "org-1", "stream-1"},
		{"tag changed", b, flip(len(sealed) - 1), "org-1", "stream-1"},
		{"truncated", b, sealed[:len(sealed)-1], "org-1", "stream-1"},
		{"header only", b, sealed[:header], "org-1", "stream-1"},
		{"empty", b, nil, "org-1", "stream-1"},
		{"appended", b, append(bytes.Clone(sealed), 0), "org-1", "stream-1"},
	}
	for _, tt := range bad {
		got, err := tt.box.Open(tt.sealed, tt.org, tt.streamID)
		if !errors.Is(err, ErrOpen) || got != nil {
			t.Errorf("%s: Open = %q, %v; want ErrOpen", tt.name, got, err)
		}
		if err != nil && strings.Contains(err.Error(), string(secret)) {
			t.Errorf("%s: the error shows the secret", tt.name)
		}
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := key(t), key(t)
	oldBox, _ := New(oldKey)
	sealedOld, _ := oldBox.Seal([]byte("token-1"), "o", "s")

	rotated, err := New(newKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Open(sealedOld, "o", "s"); err != nil || string(got) != "token-1" {
		t.Fatalf("a secret sealed with the previous key: %q, %v", got, err)
	}
	sealedNew, _ := rotated.Seal([]byte("token-2"), "o", "s")
	if id, _ := KeyID(sealedNew); id == oldBox.CurrentKeyID() {
		t.Fatal("the rotated box sealed with the previous key")
	}
	if _, err := oldBox.Open(sealedNew, "o", "s"); !errors.Is(err, ErrOpen) {
		t.Fatalf("the previous key opened a secret sealed with the new one: %v", err)
	}
}

func TestKeys(t *testing.T) {
	k := key(t)
	std := base64.StdEncoding.EncodeToString(k)
	for _, s := range []string{std, " " + std + "\n", base64.RawURLEncoding.EncodeToString(k)} {
		got, err := ParseKey(s)
		if err != nil || !bytes.Equal(got, k) {
			t.Errorf("ParseKey(%q) = %x, %v", s, got, err)
		}
	}
	secretish := "not base64 at all!!"
	for _, s := range []string{"", secretish, base64.StdEncoding.EncodeToString(k[:16]), base64.StdEncoding.EncodeToString(append(k, 1))} {
		got, err := ParseKey(s)
		if err == nil {
			t.Errorf("ParseKey(%q) = %x, want an error", s, got)
			continue
		}
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("ParseKey's error repeats its input: %v", err)
		}
	}
	for _, ks := range [][][]byte{{nil}, {k[:16]}, {k, k[:31]}} {
		if _, err := New(ks[0], ks[1:]...); err == nil {
			t.Errorf("New accepted keys of sizes %d", len(ks[0]))
		}
	}
}
