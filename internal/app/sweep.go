package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/telemetry"
	"github.com/lethe-dev/lethe/internal/translog"
	"github.com/lethe-dev/lethe/internal/worker"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// sweepBucket holds, per connector instance, when it was last swept: the
// compare-and-set on it makes one process of several sweep each instance
// each interval.
const sweepBucket = "lethe_sweeps"

// sweeper runs `lethe replay`'s scan on a schedule (suppression_sweep.interval) over
// the whole suppression list: an import or sync that re-creates a person
// whose identifiers are long shredded is caught and erased again without
// anyone restoring a backup. Each find is an event on the person's
// request, a flag for staff, a transparency-log leaf naming the
// certificate, and lethe_resurrections_total.
type sweeper struct {
	kv        jetstream.KeyValue
	replay    *replayer
	issuer    *certificate.Issuer
	instances []worker.Instance
	interval  time.Duration
	metrics   *telemetry.Metrics
	log       *zap.Logger
}

func (rt *runtime) sweeper(ctx context.Context) (*sweeper, error) {
	if rt.cfg.SuppressionSweep.Interval == 0 {
		return nil, nil
	}
	var scannable []worker.Instance
	for _, in := range rt.instances {
		if _, ok := in.Connector.(connectors.Scanner); ok {
			scannable = append(scannable, in)
		}
	}
	if len(scannable) == 0 {
		return nil, nil
	}
	kv, err := bus.EnsureKeyValue(ctx, rt.js, jetstream.KeyValueConfig{Bucket: sweepBucket,
		Description: "Lethe suppression sweeps: when each connector instance was last swept", History: 1,
		Storage: jetstream.FileStorage, Replicas: rt.replicas})
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	s := &sweeper{kv: kv, issuer: rt.issuer, instances: scannable, interval: rt.cfg.SuppressionSweep.Interval,
		metrics: rt.metrics, log: rt.log.Named("sweep")}
	s.replay = &replayer{store: rt.store, hasher: rt.hasher, log: s.log, timeout: rt.cfg.Tasks.Timeout, flag: s.flag}
	return s, nil
}

// Run sweeps every due instance at once and then checks each minute (or
// each interval, when shorter) until ctx ends.
func (s *sweeper) Run(ctx context.Context) error {
	t := time.NewTicker(min(s.interval, time.Minute))
	defer t.Stop()
	for {
		s.RunDue(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RunDue sweeps the instances that are due and that no other process
// claimed. Failures are logged; they never stop the sweeper.
func (s *sweeper) RunDue(ctx context.Context) {
	var byHash map[string][]string
	for _, in := range s.instances {
		if ctx.Err() != nil {
			return
		}
		ok, err := s.claim(ctx, in.Name, time.Now())
		if err != nil {
			s.log.Warn("sweep: cannot claim", zap.String("connector", in.Name), zap.Error(err))
			continue
		}
		if !ok {
			continue
		}
		if byHash == nil {
			if byHash, err = s.suppressed(ctx); err != nil {
				s.log.Warn("sweep: cannot read the suppression list", zap.Error(err))
				return
			}
		}
		sw, err := s.replay.sweep(ctx, in, byHash)
		if errors.Is(err, connectors.ErrCannotScan) {
			continue // a scannable type with no scan configured
		}
		if err != nil {
			s.log.Warn("sweep: scan failed", zap.String("connector", in.Name), zap.Error(err))
			continue
		}
		for range sw.found {
			s.metrics.Resurrection(in.Name)
		}
		s.log.Info("sweep finished", zap.String("connector", in.Name), zap.Int("scanned", sw.scanned),
			zap.Int("found_again", sw.found), zap.Int64("records_erased", sw.records), zap.Int("failures", len(sw.failures)))
	}
}

func (s *sweeper) suppressed(ctx context.Context) (map[string][]string, error) {
	sups, err := s.replay.store.SuppressionsSince(ctx, time.Unix(0, 0)) // the whole list (a zero time is NULL to the store)
	if err != nil {
		return nil, err
	}
	byHash := map[string][]string{}
	for _, sup := range sups {
		byHash[sup.Hash] = append(byHash[sup.Hash], sup.RequestID)
	}
	return byHash, nil
}

type sweepEntry struct {
	SweptAt time.Time `json:"swept_at"`
}

// claim marks a sweep of name as begun when the last began at least an
// interval ago; of several processes exactly one wins.
func (s *sweeper) claim(ctx context.Context, name string, now time.Time) (bool, error) {
	var e sweepEntry
	var rev uint64
	kve, err := s.kv.Get(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return false, err
	default:
		if err := json.Unmarshal(kve.Value(), &e); err != nil {
			return false, fmt.Errorf("sweep of %s: stored entry: %w", name, err)
		}
		rev = kve.Revision()
	}
	if now.Sub(e.SweptAt) < s.interval {
		return false, nil
	}
	b, err := json.Marshal(sweepEntry{SweptAt: now})
	if err != nil {
		return false, err
	}
	if rev == 0 {
		_, err = s.kv.Create(ctx, name, b)
	} else {
		_, err = s.kv.Update(ctx, name, b, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || bus.IsWrongSequence(err) {
		return false, nil // another process claimed it first
	}
	return err == nil, err
}

// flag records, within the transaction of the sweep's event, that a sweep
// found req's person again in connector and erased them: a log leaf
// naming the certificate, and a flag for staff.
func (s *sweeper) flag(ctx context.Context, tx store.Tx, req *erasure.Request, connector string, records int64, at time.Time) error {
	if cert, err := s.replay.store.Certificate(ctx, req.ID); err == nil {
		leaf := translog.RecheckEvent{CertificateID: cert.ID, Connector: connector, After: translog.RecheckSweep,
			Outcome: translog.RecheckReerased, Records: records, Note: "found again by a scheduled sweep against the suppression list",
			At: at.UTC().Format(time.RFC3339)}
		if _, err := s.issuer.LogRecheck(ctx, tx, leaf, at); err != nil {
			return err
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	why := fmt.Sprintf("%s held the person again at a scheduled sweep: Lethe erased them again (%s); find out how they came back",
		connector, plural(int(records), "record"))
	req.Flag, req.FlaggedAt, req.UpdatedAt = why, at, at
	if err := tx.UpdateRequest(ctx, *req); err != nil {
		return err
	}
	_, err := tx.AppendEvent(ctx, erasure.NewEvent(req.ID, "", erasure.EventRequestFlagged, "sweep", why,
		map[string]any{"connector": connector, "flag": why, "records": records}, at))
	return err
}
