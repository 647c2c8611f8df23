package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
)

// tryRecord posts a batch and returns its results, or an error for a batch
// that must be sent again (the whole call failed). Safe off the test's
// goroutine.
func tryRecord(env *testenv.Env, token string, events []map[string]any) ([]recordResult, error) {
	body, _ := json.Marshal(map[string]any{"query": recordMutation, "variables": map[string]any{"events": events}})
	req, _ := http.NewRequest(http.MethodPost, env.URL+"/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			RecordAuditEvents *struct{ Results []recordResult }
		}
		Errors []testenv.GraphQLError
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if len(out.Errors) > 0 && out.Errors[0].Code() != "UNAVAILABLE" {
		return nil, errNotRetryable{fmt.Sprintf("%+v", out.Errors)}
	}
	if len(out.Errors) > 0 || out.Data.RecordAuditEvents == nil {
		return nil, fmt.Errorf("%+v", out.Errors)
	}
	return out.Data.RecordAuditEvents.Results, nil
}

// errNotRetryable is a failure whose code does not say to send again.
type errNotRetryable struct{ msg string }

func (e errNotRetryable) Error() string { return "not retryable: " + e.msg }

// The attack that lost up to 1,000 events a time: the NATS server goes
// away mid-load and comes back. Every event acknowledged must end up in the
// read model exactly once, whatever the client library dropped meanwhile.
func TestNATSRestartMidLoadLosesNothing(t *testing.T) {
	x := testenv.StartExternalNATS(t)
	env := testenv.Start(t, x.Use)
	env.EnableOrg(t, "acme", domain.RegionUS)
	token := testenv.ServiceToken(t)
	at := time.Now().Add(-time.Hour)

	const writers, batches, size = 4, 30, 100
	var (
		mu      sync.Mutex
		acked   = map[string]bool{}
		retries int
		wg      sync.WaitGroup
		errs    = make(chan error, writers)
	)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				events := make([]map[string]any, size)
				for i := range events {
					events[i] = userCreated("acme", at, fmt.Sprintf("w%d-b%d-e%d@example.com", w, b, i))
				}
				for attempt := 0; ; attempt++ {
					res, err := tryRecord(env, token, events)
					if err == nil {
						mu.Lock()
						for _, r := range res {
							if r.Status == "RECORDED" || r.Status == "DUPLICATE" {
								acked[r.ID] = true
							}
						}
						mu.Unlock()
						break
					}
					var fatal errNotRetryable
					if attempt == 200 || errors.As(err, &fatal) {
						errs <- fmt.Errorf("writer %d batch %d: %v", w, b, err)
						return
					}
					mu.Lock()
					retries++
					mu.Unlock()
					time.Sleep(50 * time.Millisecond) // same ids again: de-duplicated
				}
			}
		})
	}
	// Take NATS away once a third is in, and bring it back.
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= writers*batches*size/3 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	x.Stop()
	time.Sleep(time.Second)
	x.Restart()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(acked) != writers*batches*size {
		t.Fatalf("%d events acknowledged of %d", len(acked), writers*batches*size)
	}
	t.Logf("%d events acknowledged, %d batch retries across the restart", len(acked), retries)
	env.WaitProjected(t)

	var rows, distinct int
	err := env.EventStore(domain.RegionUS).Pool().QueryRow(context.Background(),
		`SELECT count(*), count(DISTINCT id) FROM audit_us.events WHERE org_id = 'acme' AND type = 'USER_CREATED'`).Scan(&rows, &distinct)
	if err != nil {
		t.Fatal(err)
	}
	if rows != len(acked) || distinct != len(acked) {
		t.Fatalf("read model holds %d rows (%d ids) for %d acknowledged events", rows, distinct, len(acked))
	}
	reps, err := env.Reconcile(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, rep := range reps {
		if len(rep.Gaps) != 0 {
			t.Fatalf("%s: %d gaps after the restart", rep.Stream, len(rep.Gaps))
		}
	}
}
