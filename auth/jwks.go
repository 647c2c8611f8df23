package auth

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/MicahParks/keyfunc/v3"
)

// NewJWKSVerifier verifies RS256 and ES256 tokens against a JSON Web Key Set
// read from a file, or fetched from an http(s) URL and refreshed in the
// background until ctx ends.
func NewJWKSVerifier(ctx context.Context, source string) (*Verifier, error) {
	var (
		kf  keyfunc.Keyfunc
		err error
	)
	if strings.HasPrefix(source, "https://") || strings.HasPrefix(source, "http://") {
		kf, err = keyfunc.NewDefaultCtx(ctx, []string{source})
	} else {
		var raw []byte
		if raw, err = os.ReadFile(source); err == nil {
			kf, err = keyfunc.NewJWKSetJSON(raw)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", source, err)
	}
	return NewKeyfuncVerifier(kf.Keyfunc), nil
}
