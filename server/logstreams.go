package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/egress"
	"github.com/auditlog/auditlog/logstream"
	"github.com/auditlog/auditlog/logstream/delivery"
	"github.com/auditlog/auditlog/logstream/streamstore"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/ocsf"
	"github.com/auditlog/auditlog/readmodel"
	"github.com/auditlog/auditlog/secretbox"
)

// logStreamProduct names auditd as the producer of OCSF events.
var logStreamProduct = ocsf.Product{Name: "Audit Log", VendorName: "auditlog"}

// encryptionBox is the box sealing log stream secrets: the configured key,
// else, with the embedded NATS (one instance, `make run`), a development
// key kept in the data directory. With an external NATS and no key it is
// nil and log streams answer UNAVAILABLE: instances with different
// development keys could not open each other's secrets.
func (s *Server) encryptionBox() (*secretbox.Box, string, error) {
	key := s.cfg.EncryptionKey
	if len(key) == 0 {
		if s.cfg.NATSURL != "" {
			return nil, "log streams are unavailable: set AUDITD_ENCRYPTION_KEY (the same on every instance) to store destination secrets", nil
		}
		k, created, err := secretbox.DevKey(s.cfg.DataDir)
		if err != nil {
			return nil, "", err
		}
		s.log.Warn().Str("path", filepath.Join(s.cfg.DataDir, secretbox.DevKeyFile)).Bool("generated", created).
			Msg("AUDITD_ENCRYPTION_KEY not set; log stream secrets are sealed with a development key kept in the data directory")
		key = k
	}
	box, err := secretbox.New(key, s.cfg.EncryptionKeysPrevious...)
	if err != nil {
		return nil, "", fmt.Errorf("encryption key: %w", err)
	}
	return box, "", nil
}

// setupLogStreams builds the log streams' service, and their engine when
// secrets can be opened.
func (s *Server) setupLogStreams() error {
	box, unavailable, err := s.encryptionBox()
	if err != nil {
		return err
	}
	store := streamstore.New(s.control)
	policy := egress.NewPolicy(s.cfg.EgressAllow)
	host, _ := os.Hostname()
	senders := delivery.NewSender(host)
	pauseAfter := s.cfg.LogStreamPauseAfter
	if pauseAfter == 0 {
		pauseAfter = delivery.DefaultPauseAfter
	}
	opts := logstream.Options{RootCAs: s.cfg.LogStreamRootCAs}
	s.logStreams = &delivery.Service{
		Store: store, Box: box, Policy: policy, Settings: s.settings, Own: s.recorder, Senders: senders,
		Options: opts, Product: logStreamProduct, Unavailable: unavailable, Now: s.cfg.Now,
		First: func(ctx context.Context, r domain.Region) (time.Time, error) {
			st, err := s.js.Stream(ctx, natsx.AuditStream(r))
			if err != nil {
				return time.Time{}, fmt.Errorf("stream %s: %w", natsx.AuditStream(r), err)
			}
			info, err := st.Info(ctx)
			if err != nil {
				return time.Time{}, fmt.Errorf("stream %s: %w", natsx.AuditStream(r), err)
			}
			if info.State.Msgs == 0 {
				return time.Time{}, nil
			}
			return info.State.FirstTime, nil
		},
	}
	s.metrics.registry.MustRegister(delivery.NewCollector(store))
	if box == nil {
		s.log.Warn().Msg(unavailable)
		return nil
	}
	s.logEngine, err = delivery.NewEngine(delivery.Config{
		Store: store, JS: s.js, Members: serverMembers{s}, Box: box,
		Policy: policy, Senders: senders, Options: opts, Product: logStreamProduct, Own: s.recorder,
		PauseAfter: pauseAfter, Tick: s.cfg.LogStreamTick, Now: s.cfg.Now, Log: s.log,
		Leaves: func(ctx context.Context, r domain.Region, org string, keys []streamstore.LeafKey) (map[string]int64, error) {
			return streamstore.LeafIndexes(ctx, s.events[r].Pool(), readmodel.RegionSchema(r), org, keys)
		},
	})
	if err != nil {
		return err
	}
	s.logStreams.Nudge = s.logEngine.Nudge
	return nil
}

// serverMembers is the server's membership, which Run joins before it
// starts the log stream engine.
type serverMembers struct{ s *Server }

func (m serverMembers) Alive(ctx context.Context) (uint32, []uint32, error) {
	if m.s.members == nil {
		return 0, nil, errors.New("this instance has not joined the membership yet")
	}
	return m.s.members.Alive(ctx)
}

// LogStreamDeliverers is how many log streams this instance delivers now;
// 0 when log streams are unavailable.
func (s *Server) LogStreamDeliverers() int {
	if s.logEngine == nil {
		return 0
	}
	return s.logEngine.Running()
}
