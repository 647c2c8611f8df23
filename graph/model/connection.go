package model

import (
	"context"
	"sync"
	"time"
)

// AuditEventConnection is a page of events. Its total is counted only when a
// client asks for it, and at most once per connection.
type AuditEventConnection struct {
	Edges    []*AuditEventEdge
	PageInfo *PageInfo
	// Complete is false when the search stopped at its time budget, having
	// looked only as far back as SearchedThrough.
	Complete        bool
	SearchedThrough *time.Time

	once   sync.Once
	count  func(ctx context.Context) (int, bool, error)
	total  int
	capped bool
	err    error
}

// NewAuditEventConnection returns a connection whose total comes from count.
func NewAuditEventConnection(edges []*AuditEventEdge, info *PageInfo, count func(ctx context.Context) (int, bool, error)) *AuditEventConnection {
	return &AuditEventConnection{Edges: edges, PageInfo: info, count: count}
}

func (c *AuditEventConnection) load(ctx context.Context) {
	c.once.Do(func() { c.total, c.capped, c.err = c.count(ctx) })
}

// TotalCount is the number of matching events, exact up to the cap.
func (c *AuditEventConnection) TotalCount(ctx context.Context) (int, error) {
	c.load(ctx)
	return c.total, c.err
}

// TotalCountCapped reports that more events match than TotalCount says.
func (c *AuditEventConnection) TotalCountCapped(ctx context.Context) (bool, error) {
	c.load(ctx)
	return c.capped, c.err
}
