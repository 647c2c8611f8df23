package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket/wsjson"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/export"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/live"
	"github.com/auditlog/auditlog/server"
)

// twoInstances starts two auditd instances, as a deployment runs them: one
// external NATS, one Postgres database, one data directory's signing key;
// each with its own address and connections.
func twoInstances(t *testing.T, opt func(*server.Config)) (a, b *testenv.Env) {
	t.Helper()
	x := testenv.StartExternalNATS(t)
	a = testenv.Start(t, func(c *server.Config) {
		x.Use(c)
		opt(c)
	})
	cfg := a.Config
	cfg.Addr = "127.0.0.1:0"
	b = testenv.StartConfig(t, cfg)
	return a, b
}

// enableOnBoth opts org in through a and waits until b sees it too.
func enableOnBoth(t *testing.T, a, b *testenv.Env, org string) {
	t.Helper()
	a.EnableOrg(t, org, domain.RegionUS)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var out struct{ AuditLogSettings struct{ Enabled bool } }
		b.Do(t, testenv.AdminToken(t, org), `{ auditLogSettings { enabled } }`, nil).MustData(t, &out)
		if out.AuditLogSettings.Enabled {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not enabled on the second instance after 10s", org)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An organization's live subscriptions count across instances: two on A
// leave none for B, and ending one on A lets B in.
func TestLiveOrgLimitHoldsAcrossInstances(t *testing.T) {
	a, b := twoInstances(t, func(c *server.Config) { c.Live = live.Limits{PerOrg: 2} })
	enableOnBoth(t, a, b, "acme")
	enableOnBoth(t, a, b, "globex")
	token := testenv.AdminToken(t, "acme")

	wa := connectWS(t, a, token)
	wa.subscribe("1", liveSubscription, nil)
	wa.subscribe("2", liveSubscription, nil)
	waitActive(t, a, 2)
	wb := connectWS(t, b, token)
	wb.subscribe("1", liveSubscription, nil)
	if code := wb.errorCode("1"); code != "RATE_LIMITED" {
		t.Fatalf("third subscription of the org, on the other instance: %s", code)
	}
	// Another organization has its own allowance on either instance.
	g := connectWS(t, b, testenv.AdminToken(t, "globex"))
	g.subscribe("g", liveSubscription, nil)
	waitActive(t, b, 1)

	if err := wsjson.Write(wa.ctx, wa.c, wsMessage{ID: "1", Type: "complete"}); err != nil {
		t.Fatal(err)
	}
	if m := wa.read(); m.Type != "complete" || m.ID != "1" {
		t.Fatalf("want complete for 1, got %s %s", m.Type, m.ID)
	}
	waitActive(t, a, 1)
	wb.subscribe("2", liveSubscription, nil)
	waitActive(t, b, 2)
	e := vmEvent("acme", "cluster@acme.example")
	mustRecord(t, a, []map[string]any{e})
	if got := wb.nextEvent("2"); got.ID != e["id"] {
		t.Fatalf("the subscription on B got %+v", got)
	}
	if got := wa.nextEvent("2"); got.ID != e["id"] {
		t.Fatalf("the subscription on A got %+v", got)
	}
	wa.subscribe("3", liveSubscription, nil)
	if code := wa.errorCode("3"); code != "RATE_LIMITED" {
		t.Fatalf("third subscription of the org, back on the first instance: %s", code)
	}
}

// tryStartExport starts an export and returns its id or the error's code;
// it is safe to call from any goroutine.
func tryStartExport(env *testenv.Env, token string) (id, code string, err error) {
	body, _ := json.Marshal(map[string]any{"query": `mutation { startAuditExport(format: CSV) { id } }`})
	req, _ := http.NewRequest(http.MethodPost, env.URL+"/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	var out struct {
		Data   struct{ StartAuditExport *struct{ ID string } }
		Errors []testenv.GraphQLError
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", "", err
	}
	switch {
	case len(out.Errors) > 0:
		return "", out.Errors[0].Code(), nil
	case out.Data.StartAuditExport == nil:
		return "", "", fmt.Errorf("no job and no error")
	}
	return out.Data.StartAuditExport.ID, "", nil
}

// An organization's active exports count across instances: starts racing
// on both never get more than MaxActivePerOrg between them, the next is
// refused on either, and ending one lets the other instance start one.
func TestExportOrgLimitHoldsAcrossInstances(t *testing.T) {
	a, b := twoInstances(t, func(c *server.Config) { c.ExportWorkers = -1 }) // jobs stay queued
	enableOnBoth(t, a, b, "acme")
	token := testenv.AdminToken(t, "acme")
	cancel := `mutation($id: ID!) { cancelAuditExport(id: $id) { status } }`

	tests := []struct {
		name        string
		perInstance int
		wantStarted int
		wantLimited int
	}{
		{"exactly the limit", 2, export.MaxActivePerOrg, 4 - export.MaxActivePerOrg},
		{"many at once", 6, export.MaxActivePerOrg, 12 - export.MaxActivePerOrg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu      sync.Mutex
				started []string
				limited int
				wg      sync.WaitGroup
			)
			gate := make(chan struct{})
			for _, env := range []*testenv.Env{a, b} {
				for range tt.perInstance {
					wg.Go(func() {
						<-gate
						id, code, err := tryStartExport(env, token)
						mu.Lock()
						defer mu.Unlock()
						switch {
						case err != nil:
							t.Errorf("start: %v", err)
						case id != "":
							started = append(started, id)
						case code == "RATE_LIMITED":
							limited++
						default:
							t.Errorf("start refused with %s", code)
						}
					})
				}
			}
			close(gate)
			wg.Wait()
			if len(started) != tt.wantStarted || limited != tt.wantLimited {
				t.Fatalf("%d started and %d refused, want %d and %d", len(started), limited, tt.wantStarted, tt.wantLimited)
			}
			var list struct{ AuditExports []exportJob }
			b.Do(t, token, `{ auditExports { id status } }`, nil).MustData(t, &list)
			active := 0
			for _, j := range list.AuditExports {
				if j.Status == "QUEUED" || j.Status == "RUNNING" {
					active++
				}
			}
			if active != export.MaxActivePerOrg {
				t.Fatalf("%d active exports listed, want %d: %+v", active, export.MaxActivePerOrg, list.AuditExports)
			}
			for _, env := range []*testenv.Env{a, b} {
				if _, code, err := tryStartExport(env, token); err != nil || code != "RATE_LIMITED" {
					t.Fatalf("a start beyond the limit: %q %v", code, err)
				}
			}
			// Ending one on A lets B start one; then end them all for the
			// next case.
			a.Do(t, token, cancel, map[string]any{"id": started[0]}).MustData(t, new(any))
			id, code, err := tryStartExport(b, token)
			if err != nil || id == "" {
				t.Fatalf("after a cancel on the other instance: %q %v", code, err)
			}
			for _, id := range append(started[1:], id) {
				b.Do(t, token, cancel, map[string]any{"id": id}).MustData(t, new(any))
			}
		})
	}
}
