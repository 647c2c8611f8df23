package readmodel

import (
	"context"

	"github.com/auditlog/auditlog/domain"
)

// Reader answers queries for any organization by routing them to the store
// of the organization's region. An organization that never opted in has no
// region and no events.
type Reader struct {
	settings *SettingsStore
	stores   map[domain.Region]*EventStore
}

// NewReader routes queries through settings to stores.
func NewReader(settings *SettingsStore, stores map[domain.Region]*EventStore) *Reader {
	return &Reader{settings: settings, stores: stores}
}

// Store is the store of org's region, or nil for an org with no region,
// for readers such as package search that build their own queries.
func (r *Reader) Store(ctx context.Context, org string) (*EventStore, error) {
	return r.store(ctx, org)
}

func (r *Reader) store(ctx context.Context, org string) (*EventStore, error) {
	region, ok, err := r.settings.Region(ctx, org)
	if err != nil || !ok {
		return nil, err
	}
	return r.stores[region], nil
}

// List is EventStore.List in org's region.
func (r *Reader) List(ctx context.Context, org string, f domain.Filter, p PageRequest) (*EventPage, error) {
	s, err := r.store(ctx, org)
	if s == nil {
		return &EventPage{}, err
	}
	return s.List(ctx, org, f, p)
}

// Count is EventStore.Count in org's region.
func (r *Reader) Count(ctx context.Context, org string, f domain.Filter) (int, bool, error) {
	s, err := r.store(ctx, org)
	if s == nil {
		return 0, false, err
	}
	return s.Count(ctx, org, f)
}

// Get is EventStore.Get in org's region.
func (r *Reader) Get(ctx context.Context, org, id string) (*domain.Event, error) {
	s, err := r.store(ctx, org)
	if s == nil {
		return nil, err
	}
	return s.Get(ctx, org, id)
}

// History is EventStore.History in org's region.
func (r *Reader) History(ctx context.Context, org, kind, id string, p PageRequest) (*EventPage, error) {
	s, err := r.store(ctx, org)
	if s == nil {
		return &EventPage{}, err
	}
	return s.History(ctx, org, kind, id, p)
}

// CountHistory is EventStore.CountHistory in org's region.
func (r *Reader) CountHistory(ctx context.Context, org, kind, id string) (int, bool, error) {
	s, err := r.store(ctx, org)
	if s == nil {
		return 0, false, err
	}
	return s.CountHistory(ctx, org, kind, id)
}

// Export is EventStore.Export in org's region; an org without a region
// exports nothing.
func (r *Reader) Export(ctx context.Context, org string, f domain.Filter, records bool, total func(int64), fn func(*domain.Event) error) error {
	s, err := r.store(ctx, org)
	if s == nil {
		if err == nil {
			total(0)
		}
		return err
	}
	return s.Export(ctx, org, f, records, total, fn)
}
