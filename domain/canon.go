package domain

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/auditlog/auditlog/textcheck"
)

// One reading of the bytes: a text that two decoders could read
// differently was validated as one thing and stored as another, so every
// path (HTTP, websocket, NATS) and the projector refuse such text before
// decoding it. The checks live in textcheck; these wrappers (and
// TextInput, for the checks of request bodies) give their verdict the API's code.

// CheckJSON reports why raw is not a JSON text every decoder reads the same
// way (textcheck.JSON), as BAD_USER_INPUT naming the path below field.
func CheckJSON(field string, raw []byte) error { return TextInput(textcheck.JSON(field, raw)) }

// CheckText reports why s cannot be stored as text: invalid UTF-8 or NUL.
func CheckText(field, s string) error { return TextInput(textcheck.Text(field, s)) }

// CheckJSONText reports why raw, a valid JSON text, cannot be stored as
// jsonb: invalid UTF-8, an escaped NUL or an escaped lone surrogate.
func CheckJSONText(field string, raw []byte) error { return TextInput(textcheck.JSONText(field, raw)) }

// CheckJSONValue bounds a free-form JSON value's depth and numbers, besides
// CheckJSONText.
func CheckJSONValue(field string, raw json.RawMessage) error {
	return TextInput(textcheck.JSONValue(field, raw))
}

// CheckResourceID reports why s cannot name a target resource (its kind or
// id), as a query argument: it must be stored text of at most MaxIDLen bytes.
func CheckResourceID(field, s string) error {
	if len(s) > MaxIDLen {
		return BadInput(field, "is longer than %d bytes", MaxIDLen)
	}
	return CheckText(field, s)
}

// TextInput gives a textcheck verdict the API's code, BAD_USER_INPUT on
// the field it names; other errors pass through.
func TextInput(err error) error {
	var te *textcheck.Error
	if errors.As(err, &te) {
		return BadInput(te.Field, "%s", te.Message)
	}
	return err
}

// Fields an event's JSON may carry, spelled exactly: Go's decoder would
// match "ORGID" to orgId, a second spelling of one field.
var (
	eventKeys  = keySet("id", "orgId", "source", "type", "occurredAt", "recordedAt", "actor", "target", "ipAddress", "userAgent", "requestId", "details")
	actorKeys  = keySet("kind", "id", "name", "email")
	targetKeys = keySet("kind", "id", "name")
)

func keySet(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// DecodeEvent reads one event as a producer sent it (NATS ingest): the text
// must pass CheckJSON, name only an event's fields, spelled exactly, and
// decode into Event. The error is BAD_USER_INPUT naming the field. It does
// not Validate the event.
func DecodeEvent(raw []byte) (Event, error) {
	var e Event
	if err := CheckJSON("", raw); err != nil {
		return e, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return e, BadInput("", "an event must be a JSON object")
	}
	if err := exactKeys("", top, eventKeys); err != nil {
		return e, err
	}
	for name, set := range map[string]map[string]bool{"actor": actorKeys, "target": targetKeys} {
		v, ok := top[name]
		if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			continue
		}
		var sub map[string]json.RawMessage
		if err := json.Unmarshal(v, &sub); err != nil {
			return e, BadInput(name, "must be an object")
		}
		if err := exactKeys(name, sub, set); err != nil {
			return e, err
		}
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return e, BadInput(te.Field, "must be a JSON %s", jsonKind(te.Type.Kind().String()))
		}
		return e, BadInput("", "is not an event: %v", err)
	}
	return e, nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "struct", "map", "ptr":
		return "object"
	}
	return "value of another type"
}

func exactKeys(path string, m map[string]json.RawMessage, allowed map[string]bool) error {
	for k := range m {
		if !allowed[k] {
			return BadInput(joinPath(path, k), "is not a field of an event (field names are case-sensitive)")
		}
	}
	return nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
