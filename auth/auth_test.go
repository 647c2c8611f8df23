package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/auditlog/auditlog/domain"
)

var secret = []byte("test-secret")

func admin() Claims {
	return Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "user:1"}, Org: "acme", Kind: "user", Roles: []string{"ADMIN"}}
}

func TestVerifyHMAC(t *testing.T) {
	v := NewHMACVerifier(secret)
	now := time.Now()
	good, err := Mint(secret, admin(), time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(good)
	if err != nil || !p.IsAdmin() || p.OrgID != "acme" {
		t.Fatalf("good token: %+v %v", p, err)
	}

	sign := func(c Claims, m jwt.SigningMethod, key any) string {
		s, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	withTimes := func(c Claims, exp, nbf time.Time) Claims {
		c.ExpiresAt, c.NotBefore = jwt.NewNumericDate(exp), jwt.NewNumericDate(nbf)
		return c
	}
	valid := func(c Claims) Claims { return withTimes(c, now.Add(time.Hour), now.Add(-time.Minute)) }
	withName := func(c Claims, v string) Claims { c.Name = v; return c }
	withSub := func(c Claims, v string) Claims { c.Subject = v; return c }
	withEmail := func(c Claims, v string) Claims { c.Email = v; return c }
	noOrg := admin()
	noOrg.Org = ""
	badKind := admin()
	badKind.Kind = "robot"
	noSub := admin()
	noSub.Subject = ""
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	tests := []struct {
		name, token, want string
	}{
		{"alg none", sign(valid(admin()), jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType), "signing method"},
		{"wrong secret", sign(valid(admin()), jwt.SigningMethodHS256, []byte("other")), "signature is invalid"},
		{"tampered", good[:len(good)-4] + "AAAA", "signature is invalid"},
		{"other algorithm", sign(valid(admin()), jwt.SigningMethodES256, ecKey), "signing method"},
		{"expired", sign(withTimes(admin(), now.Add(-time.Hour), now.Add(-2*time.Hour)), jwt.SigningMethodHS256, secret), "expired"},
		{"not yet valid", sign(withTimes(admin(), now.Add(2*time.Hour), now.Add(time.Hour)), jwt.SigningMethodHS256, secret), "not valid yet"},
		{"no exp", sign(admin(), jwt.SigningMethodHS256, secret), "no exp"},
		{"no org", sign(valid(noOrg), jwt.SigningMethodHS256, secret), "org"},
		{"no sub", sign(valid(noSub), jwt.SigningMethodHS256, secret), "sub"},
		{"bad kind", sign(valid(badKind), jwt.SigningMethodHS256, secret), "kind"},
		{"garbage", "not.a.token", "malformed"},
		{"NUL in name", sign(valid(withName(admin(), "nul\x00name")), jwt.SigningMethodHS256, secret), "name claim contains a NUL"},
		{"overlong sub", sign(valid(withSub(admin(), strings.Repeat("s", 200))), jwt.SigningMethodHS256, secret), "sub claim is longer"},
		{"email not plain", sign(valid(withEmail(admin(), "Ada <ada@acme.example>")), jwt.SigningMethodHS256, secret), "email claim"},
		{"expires in year 9999", sign(withTimes(admin(), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), now.Add(-time.Minute)), jwt.SigningMethodHS256, secret), "longer than a user token may live"},
		{"user token for two days", sign(withTimes(admin(), now.Add(48*time.Hour), now.Add(-time.Minute)), jwt.SigningMethodHS256, secret), "24h0m0s"},
		{"service token for a year", sign(withTimes(Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "service:x"}, Kind: "service"},
			now.Add(365*24*time.Hour), now.Add(-time.Minute)), jwt.SigningMethodHS256, secret), "longer than a service token may live"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(tc.token)
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.CodeUnauthenticated || !strings.Contains(de.Message, tc.want) {
				t.Fatalf("got %v, want UNAUTHENTICATED mentioning %q", err, tc.want)
			}
			if strings.Contains(de.Message, tc.token) {
				t.Fatal("error echoes the token")
			}
		})
	}
}

func TestVerifyAcceptsLifetimesWithinTheCap(t *testing.T) {
	secret := []byte("s3cret")
	now := time.Now()
	v := NewHMACVerifier(secret).WithMaxLifetime(2*time.Hour, 0)
	for _, tc := range []struct {
		name string
		c    Claims
		ttl  time.Duration
		ok   bool
	}{
		{"user, 1h of 2h", admin(), time.Hour, true},
		{"user, 3h of 2h", admin(), 3 * time.Hour, false},
		{"service, 29 days of 30", Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "service:x"}, Kind: "service"}, 29 * 24 * time.Hour, true},
	} {
		tok, err := Mint(secret, tc.c, tc.ttl, now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(tok); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestVerifyJWKSFile(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b64 := func(n *big.Int) string { return base64.RawURLEncoding.EncodeToString(n.FillBytes(make([]byte, 32))) }
	set, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig", "x": b64(key.X), "y": b64(key.Y),
	}}})
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, set, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := NewJWKSVerifier(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	c := admin()
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour))
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := v.Verify(s); err != nil || p.OrgID != "acme" {
		t.Fatalf("ES256 via JWKS: %+v %v", p, err)
	}
	// An HMAC token signed with anything must not pass a JWKS verifier.
	h, _ := Mint(secret, admin(), time.Hour, time.Now())
	if _, err := v.Verify(h); err == nil {
		t.Fatal("HS256 token accepted by JWKS verifier")
	}
}

func TestBearerToken(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer abc": "abc", "bearer  abc ": "abc", "Basic abc": "", "": "", "Bearer": "",
	} {
		if got := BearerToken(header); got != want {
			t.Errorf("BearerToken(%q) = %q, want %q", header, got, want)
		}
	}
}

func TestDownloadLinks(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	clock := now
	key := DeriveKey([]byte("secret"), "downloads")
	s := NewDownloadSigner(key, func() time.Time { return clock })
	token, exp, err := s.Sign("acme", "job1")
	if err != nil || !exp.Equal(now.Add(DownloadTTL)) {
		t.Fatalf("sign: %v %v", exp, err)
	}
	if org, err := s.Verify(token, "job1"); err != nil || org != "acme" {
		t.Fatalf("verify: %q %v", org, err)
	}
	bearer, _ := Mint([]byte("secret"), Claims{Org: "acme", Kind: "user"}, time.Hour, now)
	other := NewDownloadSigner(DeriveKey([]byte("secret"), "other"), func() time.Time { return clock })
	otherToken, _, _ := other.Sign("acme", "job1")
	tests := map[string]struct{ token, id string }{
		"another file":     {token, "job2"},
		"another key":      {otherToken, "job1"},
		"a bearer token":   {bearer, "job1"},
		"garbage":          {"a.b.c", "job1"},
		"tampered payload": {token[:len(token)-2] + "xx", "job1"},
	}
	for name, tt := range tests {
		if _, err := s.Verify(tt.token, tt.id); !errors.Is(err, domain.ErrUnauthenticated) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	clock = now.Add(DownloadTTL + time.Minute)
	if _, err := s.Verify(token, "job1"); !errors.Is(err, domain.ErrUnauthenticated) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired link: %v", err)
	}
}

// TestVerifyIssuerAudience: with an issuer and an audience set, a token
// must name both; unset, neither is checked.
func TestVerifyIssuerAudience(t *testing.T) {
	now := time.Now()
	mint := func(iss string, aud ...string) string {
		c := admin()
		c.Issuer = iss
		if len(aud) > 0 {
			c.Audience = aud
		}
		s, err := Mint(secret, c, time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	strict := NewHMACVerifier(secret).WithIssuerAudience("https://idp.example", "auditlog")
	tests := []struct {
		name    string
		v       *Verifier
		token   string
		problem string // "" accepts
	}{
		{"right iss and aud", strict, mint("https://idp.example", "auditlog"), ""},
		{"aud among several", strict, mint("https://idp.example", "billing", "auditlog"), ""},
		{"other issuer", strict, mint("https://evil.example", "auditlog"), "issuer"},
		{"no issuer", strict, mint("", "auditlog"), "no iss claim"},
		{"other audience", strict, mint("https://idp.example", "billing"), "audience"},
		{"no audience", strict, mint("https://idp.example"), "no aud claim"},
		{"unchecked when unset", NewHMACVerifier(secret), mint("https://evil.example", "billing"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.v.Verify(tc.token)
			if tc.problem == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if domain.CodeOf(err) != domain.CodeUnauthenticated || !strings.Contains(err.Error(), tc.problem) {
				t.Fatalf("got %v, want UNAUTHENTICATED mentioning %q", err, tc.problem)
			}
		})
	}
}
