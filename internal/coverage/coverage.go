// Package coverage keeps Lethe's data map: for every connector instance,
// the latest report of where its system holds personal data and whether
// the instance's erasure rules reach each place (connectors.Discoverer).
//
// Reports live in a JetStream key-value bucket, one entry per instance:
// the processes that run a connector (and so hold its credentials) write
// them, and every process reads them, so API processes that hold no
// connector credentials can still show the map and export the metric. A
// report holds names of places, counts and kinds of data, never a value.
package coverage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Bucket is the key-value bucket holding the reports.
const Bucket = "LETHE_COVERAGE"

// Map reads and writes the reports.
type Map struct{ kv jetstream.KeyValue }

// Open creates or updates the bucket, idempotently, and returns the map.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Map, error) {
	kv, err := bus.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Lethe data map: each connector instance's latest discovery report",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, err
	}
	return &Map{kv: kv}, nil
}

// entry is one instance's stored value.
type entry struct {
	// Report is the latest finished discovery (nil: none yet).
	Report *connectors.Coverage `json:"report,omitempty"`
	// ClaimedAt is when a process began a discovery that has not ended.
	ClaimedAt time.Time `json:"claimed_at,omitzero"`
}

func (m *Map) get(ctx context.Context, name string) (entry, uint64, error) {
	var e entry
	kve, err := m.kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return e, 0, nil
	}
	if err != nil {
		return e, 0, fmt.Errorf("coverage of %s: %w", name, err)
	}
	if err := json.Unmarshal(kve.Value(), &e); err != nil {
		return e, 0, fmt.Errorf("coverage of %s: stored entry: %w", name, err)
	}
	return e, kve.Revision(), nil
}

// Reports returns the latest report of every instance that has one.
func (m *Map) Reports(ctx context.Context) (map[string]connectors.Coverage, error) {
	out := map[string]connectors.Coverage{}
	lister, err := m.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("coverage: list: %w", err)
	}
	defer func() { _ = lister.Stop() }()
	for name := range lister.Keys() {
		e, _, err := m.get(ctx, name)
		if err != nil {
			return nil, err
		}
		if e.Report != nil {
			out[name] = *e.Report
		}
	}
	return out, nil
}

// claim marks a discovery of name as begun when the instance is due (its
// last report is older than interval, or there is none) and no other
// process claimed it less than ttl ago. Compare-and-set on the entry, so
// of several replicas exactly one wins.
func (m *Map) claim(ctx context.Context, name string, now time.Time, interval, ttl time.Duration) (bool, error) {
	e, rev, err := m.get(ctx, name)
	if err != nil {
		return false, err
	}
	if e.Report != nil && now.Sub(e.Report.RanAt) < interval {
		return false, nil
	}
	if !e.ClaimedAt.IsZero() && now.Sub(e.ClaimedAt) < ttl {
		return false, nil
	}
	e.ClaimedAt = now
	b, err := json.Marshal(e)
	if err != nil {
		return false, err
	}
	if rev == 0 {
		_, err = m.kv.Create(ctx, name, b)
	} else {
		_, err = m.kv.Update(ctx, name, b, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || bus.IsWrongSequence(err) {
		return false, nil // another process claimed it first
	}
	if err != nil {
		return false, fmt.Errorf("coverage of %s: claim: %w", name, err)
	}
	return true, nil
}

// Put stores a finished report of its instance (c.Connector), ending any
// claim.
func (m *Map) Put(ctx context.Context, c connectors.Coverage) error {
	c.Findings = slices.Clone(c.Findings) // sorted here, never in the caller's slice
	c.Sort()
	b, err := json.Marshal(entry{Report: &c})
	if err != nil {
		return err
	}
	if _, err := m.kv.Put(ctx, c.Connector, b); err != nil {
		return fmt.Errorf("coverage of %s: %w", c.Connector, err)
	}
	return nil
}

// Instance is a connector instance this process runs and can discover.
type Instance struct {
	Name, Type string
	Discoverer connectors.Discoverer
}

// Runner runs discovery of its instances on a schedule: each instance
// once per Interval across every process that runs it.
type Runner struct {
	Map       *Map
	Instances []Instance
	// Interval is how old a report may grow before discovery runs again.
	Interval time.Duration
	// Timeout bounds one discovery (default 30 minutes); a claim older
	// than it is taken over by another process.
	Timeout time.Duration
	Log     *zap.Logger
	Now     func() time.Time
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return 30 * time.Minute
}

// Run discovers every due instance at once and then checks each minute
// (or each Interval, when shorter) until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	t := time.NewTicker(min(r.Interval, time.Minute))
	defer t.Stop()
	for {
		r.RunDue(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RunDue discovers the instances that are due and claimed by no other
// process, one after another. Failures are logged and stored in the
// report; they never stop the runner.
func (r *Runner) RunDue(ctx context.Context) {
	for _, in := range r.Instances {
		if ctx.Err() != nil {
			return
		}
		ok, err := r.Map.claim(ctx, in.Name, r.now(), r.Interval, r.timeout())
		if err != nil {
			r.Log.Warn("discovery: cannot read the data map", zap.String("connector", in.Name), zap.Error(err))
			continue
		}
		if !ok {
			continue
		}
		rep := Discover(ctx, in, r.timeout(), r.now)
		if err := r.Map.Put(ctx, rep); err != nil {
			r.Log.Warn("discovery: cannot store the report", zap.String("connector", in.Name), zap.Error(err))
			continue
		}
		r.Log.Info("discovery finished", zap.String("connector", in.Name), zap.Int("uncovered", rep.Count(connectors.Uncovered)),
			zap.Int("ignored", rep.Count(connectors.Ignored)), zap.Int("covered", rep.Count(connectors.Covered)),
			zap.Bool("failed", rep.Error != ""))
	}
}

// Discover runs one instance's discovery within timeout and returns its
// report, named and dated; a failure is recorded in the report's Error.
func Discover(ctx context.Context, in Instance, timeout time.Duration, now func() time.Time) connectors.Coverage {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rep, err := in.Discoverer.Discover(ctx, nil)
	rep.Connector, rep.Type, rep.RanAt = in.Name, in.Type, now().UTC()
	if err != nil {
		rep.Error = err.Error()
	}
	rep.Findings = slices.Clone(rep.Findings)
	rep.Sort()
	return rep
}

// Status values of a row of the data map.
const (
	StatusCovered        = "covered"         // discovered; nothing uncovered
	StatusUncovered      = "uncovered"       // discovered; personal data no rule reaches
	StatusFailed         = "failed"          // the last discovery did not finish
	StatusNotRun         = "not_run"         // discoverable, no report yet
	StatusCannotDiscover = "cannot_discover" // the connector type cannot read its system's layout
)

// Described is a configured connector instance as the data map lists it.
type Described struct {
	Name, Type, DisplayName string
	// ErasesBy are the kinds of identifier it searches by.
	ErasesBy []connectors.Kind
	// Discoverable: the type implements connectors.Discoverer.
	Discoverable bool
}

// Row is one connector instance on the data map.
type Row struct {
	Connector   string            `json:"connector"`
	Type        string            `json:"type"`
	DisplayName string            `json:"display_name,omitempty"`
	ErasesBy    []connectors.Kind `json:"erases_by"`
	Status      string            `json:"status"`
	Uncovered   int               `json:"uncovered"`
	Ignored     int               `json:"ignored"`
	Covered     int               `json:"covered"`
	// Places counts every place the last discovery read.
	Places   int64                `json:"places"`
	RanAt    *time.Time           `json:"ran_at,omitempty"`
	Error    string               `json:"error,omitempty"`
	Findings []connectors.Finding `json:"findings"`
}

// DataMap lists every configured instance, in config order, with its
// latest report.
func (m *Map) DataMap(ctx context.Context, instances []Described) ([]Row, error) {
	reports, err := m.Reports(ctx)
	if err != nil {
		return nil, err
	}
	rows := make([]Row, 0, len(instances))
	for _, in := range instances {
		row := Row{Connector: in.Name, Type: in.Type, DisplayName: in.DisplayName,
			ErasesBy: slices.Clone(in.ErasesBy), Findings: []connectors.Finding{}}
		if row.ErasesBy == nil {
			row.ErasesBy = []connectors.Kind{}
		}
		rep, ok := reports[in.Name]
		switch {
		case ok && rep.Type == in.Type:
			at := rep.RanAt
			row.RanAt, row.Places, row.Error, row.Findings = &at, rep.Places, rep.Error, rep.Findings
			row.Uncovered, row.Ignored, row.Covered = rep.Count(connectors.Uncovered), rep.Count(connectors.Ignored), rep.Count(connectors.Covered)
			switch {
			case rep.Error != "":
				row.Status = StatusFailed
			case row.Uncovered > 0:
				row.Status = StatusUncovered
			default:
				row.Status = StatusCovered
			}
		case in.Discoverable:
			row.Status = StatusNotRun
		default:
			row.Status = StatusCannotDiscover
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// Uncovered counts the uncovered places of each instance that has a
// report, for lethe_uncovered_columns.
func (m *Map) Uncovered(ctx context.Context) (map[string]int, error) {
	reports, err := m.Reports(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(reports))
	for name, rep := range reports {
		out[name] = rep.Count(connectors.Uncovered)
	}
	return out, nil
}
