package integrity_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/auditlog/auditlog/integrity"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditlog/auditlog/internal/projtest"
)

func TestReconcileFindsAndRepairsExactlyWhatIsMissing(t *testing.T) {
	js, store, newProjector := projtest.NewStore(t)
	ctx := context.Background()
	pool := store.Pool()
	projtest.Publish(t, js, "acme", 1500)
	projtest.Publish(t, js, "globex", 700)
	// The same event sent again past the de-duplication window is a second
	// message and one row (here once as an older build wrote it, with the
	// bare id); a message that is no event is quarantined.
	subject, data := projtest.RawEvent("acme", nil)
	var e struct{ ID string }
	_ = json.Unmarshal(data, &e)
	for _, id := range []string{e.ID, "acme:" + e.ID} {
		if _, err := js.Publish(ctx, subject, data, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	ack, err := js.Publish(ctx, "audit.us.initech.PLATFORM.USER_LOGOUT", []byte("not json"))
	if err != nil {
		t.Fatal(err)
	}
	projtest.RunUntil(t, newProjector(300), ack.Sequence)

	rep, err := integrity.Reconcile(ctx, store, js, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Gaps) != 0 || rep.Unexplained != 0 || len(rep.Quarantined) != 1 || rep.Checked != ack.Sequence-1 {
		t.Fatalf("clean read model: %d gaps, %d unexplained, %d quarantined, %d checked of %d",
			len(rep.Gaps), rep.Unexplained, len(rep.Quarantined), rep.Checked, ack.Sequence)
	}
	if o := rep.Orgs["acme"]; o.Messages != 1502 || o.Stored != 1501 || o.Duplicates != 1 || o.Rows != 1501 {
		t.Fatalf("acme: %+v", *o)
	}
	if o := rep.Orgs["initech"]; o.Quarantined != 1 || o.Messages != 1 {
		t.Fatalf("initech: %+v", *o)
	}

	// Lose three rows behind the projector's back, one of them with its
	// id claim, and forge one.
	var lost []struct {
		seq int64
		org string
		id  string
	}
	rows, err := pool.Query(ctx, `SELECT stream_seq, org_id, id FROM audit_us.events WHERE stream_seq IN (7, 1200, 2100) ORDER BY stream_seq`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var l struct {
			seq int64
			org string
			id  string
		}
		if err := rows.Scan(&l.seq, &l.org, &l.id); err != nil {
			t.Fatal(err)
		}
		lost = append(lost, l)
	}
	if len(lost) != 3 {
		t.Fatalf("found %d of the rows to lose", len(lost))
	}
	var before string
	if err := pool.QueryRow(ctx, `SELECT row_to_json(e)::text FROM audit_us.events e WHERE stream_seq = 1200`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	projtest.MustExec(t, pool, `DELETE FROM audit_us.events WHERE stream_seq IN (7, 1200, 2100)`)
	projtest.MustExec(t, pool, `DELETE FROM audit_us.event_ids WHERE org_id = $1 AND id = $2`, lost[1].org, lost[1].id)
	projtest.MustExec(t, pool, `INSERT INTO audit_us.events SELECT org_id, 'forged', occurred_at, recorded_at, source, type, category,
		actor_kind, actor_id, actor_name, actor_email, target_kind, target_id, target_name, ip_address, user_agent,
		request_id, details, search_text, stream_seq FROM audit_us.events WHERE stream_seq = 8`)

	rep, err = integrity.Reconcile(ctx, store, js, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Gaps) != 3 || rep.Unexplained != 1 {
		t.Fatalf("found %d gaps (%+v) and %d unexplained rows, want 3 and 1", len(rep.Gaps), rep.Gaps, rep.Unexplained)
	}
	if len(rep.Extra) != 1 || rep.Extra[0].ID != "forged" || rep.Extra[0].Seq != 8 {
		t.Fatalf("extra rows %+v, want the forged one", rep.Extra)
	}
	for i, g := range rep.Gaps {
		if int64(g.Seq) != lost[i].seq || g.OrgID != lost[i].org || g.ID != lost[i].id {
			t.Errorf("gap %d is %+v, want %+v", i, g, lost[i])
		}
	}
	if st, err := integrity.LastReconcile(ctx, store); err != nil || st == nil || st.Gaps != 3 || st.Quarantined != 1 {
		t.Fatalf("kept status %+v, %v", st, err)
	}

	rep, err = integrity.Reconcile(ctx, store, js, true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Repaired != 3 {
		t.Fatalf("repaired %d of 3", rep.Repaired)
	}
	var after string
	if err := pool.QueryRow(ctx, `SELECT row_to_json(e)::text FROM audit_us.events e WHERE stream_seq = 1200`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("repaired row differs:\n%s\n%s", after, before)
	}
	rep, err = integrity.Reconcile(ctx, store, js, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Gaps) != 0 {
		t.Fatalf("after repair: %+v", rep.Gaps)
	}
	if st, _ := integrity.LastReconcile(ctx, store); st.Gaps != 0 {
		t.Fatalf("kept status after repair: %+v", st)
	}
}
