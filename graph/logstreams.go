package graph

import (
	"context"
	"errors"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/graph/model"
	"github.com/auditlog/auditlog/logstream"
	"github.com/auditlog/auditlog/logstream/delivery"
	"github.com/auditlog/auditlog/logstream/streamstore"
)

// logStreams is the service, or UNAVAILABLE when the server has none.
func (r *Resolver) logStreams() (LogStreams, error) {
	if r.LogStreams == nil {
		return nil, domain.Unavailable("log streams are not configured on this server", nil)
	}
	return r.LogStreams, nil
}

func formatOf(f *model.LogStreamFormat) logstream.Format {
	if f == nil {
		return logstream.FormatJSON
	}
	return logstream.Format(*f)
}

func valueOf[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func toDestination(in *model.LogStreamDestinationInput) *delivery.Destination {
	if in == nil {
		return nil
	}
	d := &delivery.Destination{}
	if w := in.Webhook; w != nil {
		c := &logstream.WebhookConfig{URL: w.URL, Format: formatOf(w.Format)}
		for _, s := range w.Secrets {
			c.Secrets = append(c.Secrets, logstream.Secret(s))
		}
		d.Webhook = c
	}
	if s := in.Splunk; s != nil {
		d.Splunk = &logstream.SplunkConfig{
			URL: s.URL, Token: logstream.Secret(s.Token), Index: valueOf(s.Index), Source: valueOf(s.Source),
			SourceType: valueOf(s.Sourcetype), Host: valueOf(s.Host), Ack: valueOf(s.Ack), Format: formatOf(s.Format),
		}
	}
	if s := in.Syslog; s != nil {
		port := 6514
		if s.Port != nil {
			port = *s.Port
		}
		d.Syslog = &logstream.SyslogConfig{Host: s.Host, Port: port, ServerName: valueOf(s.ServerName), Format: formatOf(s.Format)}
	}
	return d
}

func toStreamFilter(in *model.LogStreamFilterInput) *streamstore.Filter {
	if in == nil {
		return nil
	}
	f := &streamstore.Filter{Query: valueOf(in.Query)}
	for _, t := range in.Types {
		f.Types = append(f.Types, domain.EventType(t))
	}
	for _, s := range in.Sources {
		f.Sources = append(f.Sources, domain.Source(s))
	}
	return f
}

func presentLogStream(v *delivery.View) *model.LogStream {
	s := v.Stream
	out := &model.LogStream{
		ID: s.ID, Name: s.Name, Status: model.LogStreamStatus(s.Status), StartAt: s.StartAt,
		LastErrorAt: s.LastErrorAt, FailingSince: s.FailingSince, LastDeliveredAt: s.LastDeliveredAt,
		Delivered: int(s.Delivered), Failed: int(s.Failed), CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt,
		Skipped: int(s.Skipped), LastSkippedAt: s.LastSkippedAt, SkippedBefore: s.SkippedBefore,
		Filter: &model.LogStreamFilter{Types: []model.AuditEventType{}, Sources: []model.AuditSource{}},
	}
	if s.PausedBy != "" {
		out.PausedBy = &s.PausedBy
	}
	if s.LastError != "" {
		out.LastError = &s.LastError
	}
	if s.LastEventID != "" {
		out.LastDeliveredEventID = &s.LastEventID
	}
	if s.Lag != nil {
		l := int(*s.Lag)
		out.Lag = &l
	}
	for _, t := range s.Filter.Types {
		out.Filter.Types = append(out.Filter.Types, model.AuditEventType(t))
	}
	for _, src := range s.Filter.Sources {
		out.Filter.Sources = append(out.Filter.Sources, model.AuditSource(src))
	}
	if s.Filter.Query != "" {
		out.Filter.Query = &s.Filter.Query
	}
	d := &model.LogStreamDestination{Kind: model.LogStreamKind(s.Kind), SecretSet: v.SecretSet}
	str := func(v string) *string {
		if v == "" {
			return nil
		}
		return &v
	}
	switch dst := v.Destination; {
	case dst.Webhook != nil:
		d.Format, d.URL, d.SecretCount = model.LogStreamFormat(dst.Webhook.Format), str(dst.Webhook.URL), len(dst.Webhook.Secrets)
	case dst.Splunk != nil:
		c := dst.Splunk
		d.Format, d.URL, d.Index, d.Source, d.Sourcetype, d.SplunkHost = model.LogStreamFormat(c.Format), str(c.URL),
			str(c.Index), str(c.Source), str(c.SourceType), str(c.Host)
		d.Ack = &c.Ack
		if v.SecretSet {
			d.SecretCount = 1
		}
	case dst.Syslog != nil:
		c := dst.Syslog
		d.Format, d.Host, d.Port, d.ServerName = model.LogStreamFormat(c.Format), str(c.Host), &c.Port, str(c.ServerName)
	}
	out.Destination = d
	return out
}

func (r *Resolver) listLogStreams(ctx context.Context) ([]*model.LogStream, error) {
	svc, err := r.logStreams()
	if err != nil {
		return nil, err
	}
	vs, err := svc.List(ctx, principal(ctx).OrgID)
	if err != nil {
		return nil, err
	}
	out := make([]*model.LogStream, len(vs))
	for i, v := range vs {
		out[i] = presentLogStream(v)
	}
	return out, nil
}

func (r *Resolver) changeLogStream(ctx context.Context, change func(LogStreams, *domain.Principal) (*delivery.View, error)) (*model.LogStream, error) {
	svc, err := r.logStreams()
	if err != nil {
		return nil, err
	}
	v, err := change(svc, principal(ctx))
	if err != nil {
		return nil, err
	}
	return presentLogStream(v), nil
}

func (r *Resolver) createLogStream(ctx context.Context, in model.CreateLogStreamInput) (*model.LogStream, error) {
	return r.changeLogStream(ctx, func(svc LogStreams, p *domain.Principal) (*delivery.View, error) {
		return svc.Create(ctx, p, delivery.Input{
			Name: &in.Name, Destination: toDestination(in.Destination), Filter: toStreamFilter(in.Filter), StartAt: in.StartAt,
		})
	})
}

func (r *Resolver) updateLogStream(ctx context.Context, in model.UpdateLogStreamInput) (*model.LogStream, error) {
	return r.changeLogStream(ctx, func(svc LogStreams, p *domain.Principal) (*delivery.View, error) {
		return svc.Update(ctx, p, in.ID, delivery.Input{
			Name: in.Name, Destination: toDestination(in.Destination), Filter: toStreamFilter(in.Filter), Enabled: in.Enabled,
		})
	})
}

func (r *Resolver) testLogStream(ctx context.Context, id string) (*model.LogStreamTestResult, error) {
	svc, err := r.logStreams()
	if err != nil {
		return nil, err
	}
	res, err := svc.Test(ctx, principal(ctx), id)
	var le *logstream.Error
	var de *domain.Error
	switch {
	case errors.As(err, &de):
		return nil, err
	case errors.As(err, &le):
		msg := le.Error()
		out := &model.LogStreamTestResult{Status: max(res.Status, le.Status), Error: &msg}
		if le.Code != "" {
			out.Code = &le.Code
		}
		if res.Body != "" {
			out.Body = &res.Body
		}
		return out, nil
	case err != nil:
		return nil, err
	}
	out := &model.LogStreamTestResult{Ok: true, Status: res.Status}
	if res.Code != "" {
		out.Code = &res.Code
	}
	if res.Body != "" {
		out.Body = &res.Body
	}
	return out, nil
}
