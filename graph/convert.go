package graph

import (
	"context"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/graph/model"
	"github.com/auditlog/auditlog/query"
	"github.com/auditlog/auditlog/readmodel"
)

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func toFilter(f *model.AuditEventFilter) (domain.Filter, error) {
	if f == nil {
		return domain.Filter{}, nil
	}
	df := domain.Filter{
		Sources:      model.Convert[domain.Source](f.Sources),
		Categories:   model.Convert[domain.Category](f.Categories),
		Types:        model.Convert[domain.EventType](f.Types),
		ExcludeTypes: model.Convert[domain.EventType](f.ExcludeTypes),
		ActorID:      deref(f.ActorID),
		Search:       deref(f.Search),
		From:         f.From,
		To:           f.To,
		Query:        deref(f.Query),
	}
	return df, query.ValidateFilter(df)
}

func toPage(first *int, after *string, ascending bool) (readmodel.PageRequest, error) {
	p := readmodel.PageRequest{First: readmodel.DefaultPageSize, Ascending: ascending}
	if first != nil {
		p.First = *first
	}
	if err := p.Validate(); err != nil {
		return p, err
	}
	if after != nil && *after != "" {
		c, err := readmodel.DecodeCursor(*after)
		if err != nil {
			return p, err
		}
		p.After = c
	}
	return p, nil
}

// toConnection presents page, read as p asked. A page read after a cursor
// has events before it (the one at the cursor at least), which is what
// hasPreviousPage tells a client paging forward.
func toConnection(page *readmodel.EventPage, p readmodel.PageRequest, count func(ctx context.Context) (int, bool, error)) *model.AuditEventConnection {
	edges := make([]*model.AuditEventEdge, len(page.Events))
	for i, e := range page.Events {
		edges[i] = &model.AuditEventEdge{
			Cursor: readmodel.Cursor{OccurredAt: e.OccurredAt, ID: e.ID}.Encode(),
			Node:   model.NewAuditEvent(e),
		}
	}
	info := &model.PageInfo{HasNextPage: page.HasNextPage, HasPreviousPage: p.After != nil}
	if len(edges) > 0 {
		info.StartCursor, info.EndCursor = &edges[0].Cursor, &edges[len(edges)-1].Cursor
	}
	if page.Partial != nil {
		// A count would walk the same rows under a budget of its own and
		// stop at least as early: what the page found is the lower bound,
		// at no second budget's cost.
		found := len(page.Events)
		count = func(context.Context) (int, bool, error) { return found, true, nil }
	}
	c := model.NewAuditEventConnection(edges, info, count)
	c.Complete = page.Partial == nil
	if pt := page.Partial; pt != nil {
		// A partial search continues after the last event it looked at,
		// which is at or past the last one it found.
		end := pt.Resume.Encode()
		info.EndCursor = &end
		at := pt.SearchedThrough
		c.SearchedThrough = &at
	}
	return c
}

func toEvent(in *model.AuditEventInput) domain.Event {
	e := domain.Event{
		ID:         deref(in.ID),
		OrgID:      in.OrgID,
		Source:     domain.Source(in.Source),
		Type:       domain.EventType(in.Type),
		OccurredAt: in.OccurredAt,
		IPAddress:  deref(in.IPAddress),
		UserAgent:  deref(in.UserAgent),
		RequestID:  deref(in.RequestID),
		Details:    in.Details,
	}
	if in.Actor != nil {
		e.Actor = domain.Actor{Kind: domain.ActorKind(in.Actor.Kind), ID: in.Actor.ID,
			Name: deref(in.Actor.Name), Email: deref(in.Actor.Email)}
	}
	if in.Target != nil {
		e.Target = &domain.Target{Kind: in.Target.Kind, ID: in.Target.ID, Name: deref(in.Target.Name)}
	}
	return e
}

// toSettings presents s, with the retention of its region as of now.
func (r *Resolver) toSettings(s domain.Settings) *model.AuditLogSettings {
	out := &model.AuditLogSettings{Enabled: s.Enabled, Version: int(s.Version)}
	if s.Region != "" {
		region := model.Region(s.Region)
		out.Region = &region
		var ret domain.Retention
		if r.Retention != nil {
			ret = r.Retention(s.Region)
		}
		out.Retention = toRetention(ret, r.now())
	}
	if s.UpdatedBy != nil {
		out.UpdatedBy = model.NewActor(s.UpdatedBy)
		at := s.UpdatedAt
		out.UpdatedAt = &at
	}
	return out
}

func toTypeInfo(t domain.TypeInfo) *model.AuditEventTypeInfo {
	fields := make([]*model.PayloadField, len(t.Fields))
	for i, f := range t.Fields {
		desc := f.Description
		fields[i] = &model.PayloadField{Name: f.Name, Type: string(f.Type), Required: f.Required, Description: &desc}
	}
	return &model.AuditEventTypeInfo{
		Type: model.AuditEventType(t.Type), Category: model.AuditEventCategory(t.Category),
		Description: t.Description, Fields: fields,
	}
}

func toRetention(r domain.Retention, now time.Time) *model.AuditLogRetention {
	out := &model.AuditLogRetention{FloorDays: int(max(r.Floor, 0) / domain.Day)}
	if !r.Forever() {
		days := int(r.Period / domain.Day)
		oldest := r.Horizon(now)
		out.Days, out.OldestKept = &days, &oldest
	}
	return out
}

func optionalString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
