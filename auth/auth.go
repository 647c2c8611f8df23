// Package auth verifies and mints the bearer JWTs that identify callers, and
// carries the resulting principal through request contexts.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/auditlog/auditlog/domain"
)

// Claims are the token claims of the contract.
type Claims struct {
	jwt.RegisteredClaims
	Org     string   `json:"org,omitempty"`
	Name    string   `json:"name,omitempty"`
	Email   string   `json:"email,omitempty"`
	Roles   []string `json:"roles,omitempty"`
	Kind    string   `json:"kind,omitempty"`
	Sources []string `json:"sources,omitempty"`
	Orgs    []string `json:"orgs,omitempty"`
}

// Verifier checks tokens and turns them into principals.
type Verifier struct {
	keyfunc jwt.Keyfunc
	methods []string
	leeway  time.Duration
	// maxUser and maxService bound how far in the future a token of each
	// kind may expire: a leaked token must not work for ever.
	maxUser, maxService time.Duration
	// issuer and audience, when set, must be the token's iss and one of
	// its aud: a token minted for another service is not one for auditd.
	issuer, audience string
	now              func() time.Time
}

// Default maximum token lifetimes. A person signs in every day; a service's
// credentials are rotated at least monthly.
const (
	DefaultMaxUserLifetime    = 24 * time.Hour
	DefaultMaxServiceLifetime = 30 * 24 * time.Hour
)

// NewHMACVerifier verifies HS256 tokens signed with secret.
func NewHMACVerifier(secret []byte) *Verifier {
	return newVerifier(func(*jwt.Token) (any, error) { return secret, nil }, jwt.SigningMethodHS256.Alg())
}

// NewKeyfuncVerifier verifies asymmetric tokens (RS256, ES256) with keys from
// keyfunc, e.g. a JWKS.
func NewKeyfuncVerifier(keyfunc jwt.Keyfunc) *Verifier {
	return newVerifier(keyfunc, jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg())
}

func newVerifier(keyfunc jwt.Keyfunc, methods ...string) *Verifier {
	return &Verifier{
		keyfunc: keyfunc, methods: methods, leeway: 30 * time.Second,
		maxUser: DefaultMaxUserLifetime, maxService: DefaultMaxServiceLifetime, now: time.Now,
	}
}

// WithMaxLifetime returns v refusing user and service tokens that expire
// more than user or service from now; zero keeps a default.
func (v *Verifier) WithMaxLifetime(user, service time.Duration) *Verifier {
	c := *v
	if user > 0 {
		c.maxUser = user
	}
	if service > 0 {
		c.maxService = service
	}
	return &c
}

// WithIssuerAudience returns v requiring tokens whose iss is issuer and
// whose aud names audience; an empty value is not checked.
func (v *Verifier) WithIssuerAudience(issuer, audience string) *Verifier {
	c := *v
	c.issuer, c.audience = issuer, audience
	return &c
}

// Verify parses token and returns its principal, or an UNAUTHENTICATED error
// that says what is wrong without echoing the token.
func (v *Verifier) Verify(token string) (*domain.Principal, error) {
	var c Claims
	opts := []jwt.ParserOption{jwt.WithValidMethods(v.methods), jwt.WithLeeway(v.leeway), jwt.WithExpirationRequired()}
	if v.issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.issuer))
	}
	if v.audience != "" {
		opts = append(opts, jwt.WithAudience(v.audience))
	}
	_, err := jwt.ParseWithClaims(token, &c, v.keyfunc, opts...)
	if err != nil {
		return nil, unauthenticated(tokenProblem(err))
	}
	if c.Subject == "" {
		return nil, unauthenticated("token has no sub claim")
	}
	if err := storableClaims(&c); err != nil {
		return nil, err
	}
	p := &domain.Principal{
		Subject: c.Subject, OrgID: c.Org, Name: c.Name, Email: c.Email,
		Roles: c.Roles, Kind: domain.PrincipalKind(c.Kind), Orgs: c.Orgs,
	}
	maxLife := v.maxService
	if p.Kind == domain.PrincipalUser {
		maxLife = v.maxUser
	}
	if c.ExpiresAt.After(v.now().Add(maxLife + v.leeway)) {
		return nil, unauthenticated(fmt.Sprintf("token expires more than %s from now, longer than a %s token may live", maxLife, p.Kind))
	}
	switch p.Kind {
	case domain.PrincipalUser:
		if !domain.ValidOrgID(c.Org) {
			return nil, unauthenticated("token has no valid org claim")
		}
	case domain.PrincipalService:
		// orgs absent means the service may record for any org.
		for _, s := range c.Sources {
			p.Sources = append(p.Sources, domain.Source(s))
		}
	default:
		return nil, unauthenticated(`token kind must be "user" or "service"`)
	}
	return p, nil
}

// storableClaims refuses claims that would become an event's actor and
// that the log cannot store: a NUL, invalid UTF-8, an overlong name or id,
// or an email that is not a plain address. Such a token is refused at
// once rather than failing later, in a settings change's own event.
func storableClaims(c *Claims) error {
	actor := domain.Actor{Kind: domain.ActorUser, ID: c.Subject, Name: c.Name, Email: c.Email}
	if err := actor.Validate(); err != nil {
		var de *domain.Error
		if errors.As(err, &de) {
			claim := map[string]string{"actor.id": "sub", "actor.name": "name", "actor.email": "email"}[de.Field]
			return unauthenticated(fmt.Sprintf("token %s claim %s", claim, de.Message))
		}
		return unauthenticated("token claims are not valid")
	}
	return nil
}

func tokenProblem(err error) string {
	switch {
	case strings.Contains(err.Error(), "signing method"):
		// golang-jwt reports a rejected alg (none, or not ours) as an invalid
		// signature; say what is really wrong.
		return "token signing method is not accepted"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token is expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token is not valid yet"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "token signature is invalid"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "token cannot be verified"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "token was not issued by the expected issuer (iss)"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "token is not meant for this audience (aud)"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		for _, claim := range []string{"exp", "iss", "aud"} {
			if strings.Contains(err.Error(), claim+" claim") {
				return "token has no " + claim + " claim"
			}
		}
		return "token lacks a required claim"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "token is malformed"
	}
	return "token is invalid"
}

func unauthenticated(msg string) error {
	return &domain.Error{Code: domain.CodeUnauthenticated, Message: msg}
}

// Mint signs claims with secret (HS256) for development and tests.
func Mint(secret []byte, c Claims, ttl time.Duration, now time.Time) (string, error) {
	c.IssuedAt = jwt.NewNumericDate(now)
	c.NotBefore = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

type ctxKey struct{}

// authResult is what the middleware learned: a principal or why not.
type authResult struct {
	p   *domain.Principal
	err error
}

// WithToken verifies token (possibly empty) and stores the outcome in ctx.
func (v *Verifier) WithToken(ctx context.Context, token string) context.Context {
	if token == "" {
		return context.WithValue(ctx, ctxKey{}, authResult{err: unauthenticated("no bearer token")})
	}
	p, err := v.Verify(token)
	return context.WithValue(ctx, ctxKey{}, authResult{p: p, err: err})
}

// Middleware authenticates the bearer token of each request. It does not
// reject: the API decides per field what needs which principal.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(v.WithToken(r.Context(), BearerToken(r.Header.Get("Authorization")))))
	})
}

// BearerToken extracts the token of an "Authorization: Bearer …" value.
func BearerToken(header string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// FromContext returns the caller, or the UNAUTHENTICATED error explaining
// why there is none.
func FromContext(ctx context.Context) (*domain.Principal, error) {
	r, ok := ctx.Value(ctxKey{}).(authResult)
	if !ok {
		return nil, unauthenticated("no bearer token")
	}
	return r.p, r.err
}
