package delivery

import (
	"encoding/json"
	"fmt"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/egress"
	"github.com/auditlog/auditlog/logstream"
	"github.com/auditlog/auditlog/logstream/splunk"
	"github.com/auditlog/auditlog/logstream/syslog"
	"github.com/auditlog/auditlog/logstream/webhook"
	"github.com/auditlog/auditlog/secretbox"
)

// Destination is where a stream delivers: exactly one of its configs is
// set, the one its Kind names.
type Destination struct {
	Kind    logstream.Kind
	Webhook *logstream.WebhookConfig
	Splunk  *logstream.SplunkConfig
	Syslog  *logstream.SyslogConfig
}

// Validate checks d as the API received it; errors are BAD_USER_INPUT
// naming the field.
func (d Destination) Validate(policy *egress.Policy) error {
	n := 0
	for _, set := range []bool{d.Webhook != nil, d.Splunk != nil, d.Syslog != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return domain.BadInput("destination", "give exactly one of webhook, splunk and syslog")
	}
	switch {
	case d.Webhook != nil:
		return d.Webhook.Validate(policy)
	case d.Splunk != nil:
		return d.Splunk.Validate(policy)
	default:
		return d.Syslog.Validate()
	}
}

// withKind sets Kind from the config that is set.
func (d Destination) withKind() Destination {
	switch {
	case d.Webhook != nil:
		d.Kind = logstream.KindWebhook
	case d.Splunk != nil:
		d.Kind = logstream.KindSplunkHEC
	case d.Syslog != nil:
		d.Kind = logstream.KindSyslog
	}
	return d
}

func (d Destination) secrets() []string {
	var out []string
	switch {
	case d.Webhook != nil:
		for _, s := range d.Webhook.Secrets {
			out = append(out, s.Reveal())
		}
	case d.Splunk != nil:
		out = append(out, d.Splunk.Token.Reveal())
	}
	return out
}

// config is d's config as stored: JSON with each secret [redacted].
func (d Destination) config() (json.RawMessage, error) {
	var v any
	switch {
	case d.Webhook != nil:
		v = d.Webhook
	case d.Splunk != nil:
		v = d.Splunk
	default:
		v = d.Syslog
	}
	return json.Marshal(v)
}

// seal seals d's secrets for org and stream; nil when it has none.
func (d Destination) seal(box *secretbox.Box, org, stream string) ([]byte, error) {
	secrets := d.secrets()
	if len(secrets) == 0 {
		return nil, nil
	}
	plain, err := json.Marshal(secrets)
	if err != nil {
		return nil, err
	}
	return box.Seal(plain, org, stream)
}

// Redacted is the destination of a stored config, its secrets left
// [redacted]: what the API shows.
func Redacted(kind string, config json.RawMessage) (Destination, error) {
	d := Destination{Kind: logstream.Kind(kind)}
	var err error
	switch d.Kind {
	case logstream.KindWebhook:
		d.Webhook = &logstream.WebhookConfig{}
		err = json.Unmarshal(config, d.Webhook)
	case logstream.KindSplunkHEC:
		d.Splunk = &logstream.SplunkConfig{}
		err = json.Unmarshal(config, d.Splunk)
	case logstream.KindSyslog:
		d.Syslog = &logstream.SyslogConfig{}
		err = json.Unmarshal(config, d.Syslog)
	default:
		return d, fmt.Errorf("unknown destination kind %q", kind)
	}
	return d, err
}

// open is a stored destination with its secrets opened.
func open(box *secretbox.Box, org, stream, kind string, config json.RawMessage, sealed []byte) (Destination, error) {
	d, err := Redacted(kind, config)
	if err != nil {
		return d, err
	}
	var secrets []string
	if len(sealed) > 0 {
		plain, err := box.Open(sealed, org, stream)
		if err != nil {
			return d, err
		}
		if err := json.Unmarshal(plain, &secrets); err != nil {
			return d, fmt.Errorf("sealed secrets: %w", err)
		}
	}
	switch {
	case d.Webhook != nil:
		d.Webhook.Secrets = d.Webhook.Secrets[:0]
		for _, s := range secrets {
			d.Webhook.Secrets = append(d.Webhook.Secrets, logstream.Secret(s))
		}
	case d.Splunk != nil && len(secrets) > 0:
		d.Splunk.Token = logstream.Secret(secrets[0])
	}
	return d, nil
}

// SenderFactory builds the Sender of a destination. Tests swap it to add
// their receivers' CA.
type SenderFactory func(d Destination, opts logstream.Options) (logstream.Sender, error)

// NewSender builds d's sender with opts; hostname names this instance in
// syslog messages.
func NewSender(hostname string) SenderFactory {
	return func(d Destination, opts logstream.Options) (logstream.Sender, error) {
		switch {
		case d.Webhook != nil:
			return webhook.New(*d.Webhook, opts)
		case d.Splunk != nil:
			return splunk.New(*d.Splunk, opts, splunk.AckTiming{})
		case d.Syslog != nil:
			return syslog.New(*d.Syslog, opts, hostname)
		}
		return nil, fmt.Errorf("destination has no config")
	}
}
