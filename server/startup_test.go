package server_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/server"
)

// Instances starting together on one fresh database all start: schema
// creation and every migration take turns under one advisory lock.
func TestInstancesStartingTogetherAllStart(t *testing.T) {
	const n = 4
	x := testenv.StartExternalNATS(t)
	db := testenv.Postgres(t)
	dir := t.TempDir()
	// One signing key, as a deployment configures (the development key's
	// file is not what this test is about).
	key, _, err := server.DevSigningKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			srv, err := server.New(ctx, server.Config{SigningKey: key,
				Addr: "127.0.0.1:0", DataDir: dir, NATSURL: x.URL(), DatabaseURL: db,
				Verifier: auth.NewHMACVerifier(testenv.Secret),
				Streams:  natsx.Streams{DuplicateWindow: time.Minute},
				Log:      zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
			})
			errs[i] = err
			if err == nil {
				srv.Close()
			}
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d of %d: %v", i, n, err)
		}
	}
}
