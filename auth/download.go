package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/auditlog/auditlog/domain"
)

// downloadAudience marks download tokens, so no bearer token of the API can
// be replayed as one and the other way round (bearer tokens carry no aud of
// ours, and a download token has no kind, which Verify refuses).
const downloadAudience = "auditlog-export-download"

// DownloadTTL is how long a signed download URL works.
const DownloadTTL = 15 * time.Minute

// DeriveKey derives a key for one purpose from secret (HMAC-SHA256), so one
// configured secret can serve several uses without one use's key
// verifying another's tokens.
func DeriveKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// DownloadSigner signs and checks the short-lived tokens of download URLs,
// which let a browser fetch one export file without a bearer header.
type DownloadSigner struct {
	key []byte
	now func() time.Time
}

// NewDownloadSigner signs with key (HS256); now is the clock.
func NewDownloadSigner(key []byte, now func() time.Time) *DownloadSigner {
	if now == nil {
		now = time.Now
	}
	return &DownloadSigner{key: key, now: now}
}

type downloadClaims struct {
	jwt.RegisteredClaims
	Org string `json:"org"`
}

// Sign returns a token for file id of org, valid for DownloadTTL.
func (s *DownloadSigner) Sign(org, id string) (string, time.Time, error) {
	now := s.now()
	exp := now.Add(DownloadTTL)
	c := downloadClaims{Org: org, RegisteredClaims: jwt.RegisteredClaims{
		Subject: id, Audience: jwt.ClaimStrings{downloadAudience},
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
	}}
	t, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign download: %w", err)
	}
	return t, exp, nil
}

// Verify checks token for file id and returns its org.
func (s *DownloadSigner) Verify(token, id string) (string, error) {
	var c downloadClaims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return s.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithAudience(downloadAudience),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(s.now))
	if err != nil {
		return "", unauthenticated("download link " + tokenProblem(err)[len("token "):])
	}
	if c.Subject != id || !domain.ValidOrgID(c.Org) {
		return "", unauthenticated("download link is for another file")
	}
	return c.Org, nil
}
