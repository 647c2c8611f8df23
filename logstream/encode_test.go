package logstream

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/export/ndjson"
	"github.com/auditlog/auditlog/ocsf"
)

func testEvent(id string, leaf int64) *domain.Event {
	return &domain.Event{
		ID: id, OrgID: "org-1", Source: domain.SourcePlatform, Type: "USER_CREATED",
		OccurredAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), RecordedAt: time.Date(2026, 3, 1, 12, 0, 1, 0, time.UTC),
		Actor:   domain.Actor{Kind: domain.ActorUser, ID: "u-1", Name: "Ada"},
		Details: json.RawMessage(`{"userId":"u-2","userEmail":"bob@example.com"}`), LeafIndex: &leaf,
	}
}

// JSON is exactly an NDJSON export's line plus leafIndex.
func TestEncodeJSON(t *testing.T) {
	enc, err := NewEncoder(FormatJSON, ocsf.Product{Name: "Audit Log"})
	if err != nil {
		t.Fatal(err)
	}
	e := testEvent("01JEVENT", 17)
	got, err := enc.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	var line bytes.Buffer
	ne := ndjson.NewEncoder(&line)
	_ = ne.Encode(e)
	_ = ne.Flush()
	var want, have map[string]any
	_ = json.Unmarshal(line.Bytes(), &want)
	want["leafIndex"] = float64(17)
	if err := json.Unmarshal(got, &have); err != nil {
		t.Fatalf("not JSON: %v: %s", err, got)
	}
	wj, _ := json.Marshal(want)
	hj, _ := json.Marshal(have)
	if !bytes.Equal(wj, hj) {
		t.Errorf("got %s\nwant %s", hj, wj)
	}
	if !bytes.HasPrefix(got, []byte(`{"id":"01JEVENT"`)) {
		t.Errorf("the id is not first: %s", got)
	}

	// Encoding again does not reuse the slice handed out.
	e2 := testEvent("01JOTHER", 18)
	e2.LeafIndex = nil
	again, _ := enc.Encode(e2)
	if bytes.Contains(got, []byte("01JOTHER")) {
		t.Error("a later Encode overwrote an earlier result")
	}
	if err := json.Unmarshal(again, &have); err != nil || have["leafIndex"] != nil {
		t.Errorf("unprojected event: %v, leafIndex %v", err, have["leafIndex"])
	}
	if _, ok := have["leafIndex"]; !ok {
		t.Error("unprojected event: leafIndex absent, want null")
	}
}

func TestEncodeOCSF(t *testing.T) {
	enc, _ := NewEncoder(FormatOCSF, ocsf.Product{Name: "Audit Log", VendorName: "Example"})
	all, err := enc.EncodeAll([]*domain.Event{testEvent("01JA", 1), testEvent("01JB", 2)})
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range all {
		var m struct {
			ClassUID int `json:"class_uid"`
			Metadata struct {
				UID      string `json:"uid"`
				Sequence int64  `json:"sequence"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(b, &m); err != nil || m.ClassUID != ocsf.ClassAccountChange || m.Metadata.Sequence != int64(i+1) {
			t.Errorf("event %d: %v %+v", i, err, m)
		}
	}
	if _, err := enc.EncodeAll([]*domain.Event{{}}); err == nil {
		t.Error("an event without an id encoded")
	}
	if _, err := NewEncoder("XML", ocsf.Product{}); err == nil {
		t.Error("an unknown format was accepted")
	}
}
