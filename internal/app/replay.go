package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/telemetry"
	"github.com/lethe-dev/lethe/internal/worker"
	"go.uber.org/zap"
)

// runReplay is `lethe replay`: after a backup is restored, erase again the
// people whose erasure completed since the backup was taken. Their
// identifiers are shredded, so the restored systems that can be scanned are
// searched for identifiers whose keyed hash is on the suppression list.
func runReplay(ctx context.Context, e env, args []string) error {
	var since *string
	var dryRun *bool
	cfg, err := configCommand("replay", e, args, func(fs *flag.FlagSet) {
		since = fs.String("since", "", "when the restored backup was taken (YYYY-MM-DD): erasures completed since then are applied again")
		dryRun = fs.Bool("dry-run", false, "only report what would be erased")
	})
	if err != nil {
		return err
	}
	from, err := time.Parse(time.DateOnly, *since)
	if err != nil {
		fmt.Fprintln(e.stderr, "lethe replay: --since must be a date such as 2026-01-31")
		return errUsage
	}
	log, err := telemetry.NewLogger(e.stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	keys, err := loadKeyRing(cfg.Encryption, e.getenv)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, e.getenv, keys, false, log)
	if err != nil {
		return err
	}
	defer st.Close()
	hasher, err := loadHasher(cfg.Subject, e.getenv)
	if err != nil {
		return err
	}
	instances, err := buildConnectors(ctx, cfg, nil, e.getenv, log)
	if err != nil {
		return err
	}
	defer closeConnectors(instances)
	r := &replayer{store: st, hasher: hasher, log: log, timeout: cfg.Tasks.Timeout, dryRun: *dryRun}
	return r.run(ctx, e.stdout, instances, from)
}

type replayer struct {
	store   store.Store
	hasher  *erasure.Hasher
	log     *zap.Logger
	timeout time.Duration
	dryRun  bool
	// flag, when set (scheduled sweeps), flags a request whose person a
	// sweep found again, within the transaction that records it.
	flag func(ctx context.Context, tx store.Tx, req *erasure.Request, connector string, records int64, at time.Time) error
}

func (r *replayer) actor() string {
	if r.flag != nil {
		return "sweep"
	}
	return "replay"
}

func (r *replayer) why() string {
	if r.flag != nil {
		return "scheduled sweep against the suppression list"
	}
	return "backup restored"
}

// replayTarget is one erased person found again, by one identifier.
type replayTarget struct {
	subject  connectors.Subject
	requests []string
}

func (r *replayer) run(ctx context.Context, out io.Writer, instances []worker.Instance, since time.Time) error {
	sups, err := r.store.SuppressionsSince(ctx, since)
	if err != nil {
		return err
	}
	byHash := map[string][]string{}
	people := map[string]bool{}
	for _, s := range sups {
		byHash[s.Hash] = append(byHash[s.Hash], s.RequestID)
		people[s.RequestID] = true
	}
	verb := "Erasing again"
	if r.dryRun {
		verb = "Dry run: would erase again"
	}
	fmt.Fprintf(out, "%s what erasures completed since %s removed (%d requests on the suppression list).\n", verb, since.Format(time.DateOnly), len(people))
	var cannot []string
	failed := 0
	for _, in := range instances {
		sw, err := r.sweep(ctx, in, byHash)
		if errors.Is(err, connectors.ErrCannotScan) {
			cannot = append(cannot, sw.cannot)
			continue
		}
		if err != nil {
			failed++
			fmt.Fprintf(out, "  %s (%s): scan failed: %v\n", in.Name, in.Type, err)
			continue
		}
		for _, e := range sw.failures {
			fmt.Fprintf(out, "  %s (%s): %s\n", in.Name, in.Type, e)
		}
		failed += len(sw.failures)
		fmt.Fprintf(out, "  %s (%s): scanned %d identifiers; %d belong to people erased since then", in.Name, in.Type, sw.scanned, sw.found)
		if !r.dryRun {
			fmt.Fprintf(out, "; erased %d records again", sw.records)
		}
		fmt.Fprintln(out)
	}
	if len(cannot) > 0 {
		fmt.Fprintf(out, "Cannot scan, so check or erase by hand: %s\n", strings.Join(cannot, ", "))
	}
	if failed > 0 {
		return fmt.Errorf("replay: %d failures; see above", failed)
	}
	return nil
}

// swept is what a sweep of one instance found and did.
type swept struct {
	scanned, found int
	records        int64
	// failures: one line per person who could not be erased again (no
	// identifiers).
	failures []string
	// cannot names the instance when it cannot be scanned.
	cannot string
}

// sweep scans one instance for identifiers whose keyed hash is in byHash
// (suppression list entries: hash → request ids) and, unless a dry run,
// erases each person found again.
func (r *replayer) sweep(ctx context.Context, in worker.Instance, byHash map[string][]string) (swept, error) {
	var sw swept
	sc, ok := in.Connector.(connectors.Scanner)
	if !ok {
		sw.cannot = fmt.Sprintf("%s (%s)", in.Name, in.Type)
		return sw, connectors.ErrCannotScan
	}
	targets := map[string]*replayTarget{}
	err := sc.Scan(ctx, func(s connectors.Subject) error {
		sw.scanned++
		n, err := s.Normalize()
		if err != nil {
			return nil // not a usable identifier (a stray file name)
		}
		for _, id := range r.hasher.Ref(n).Identifiers {
			if reqs, ok := byHash[id.Hash]; ok && targets[id.Hash] == nil {
				targets[id.Hash] = &replayTarget{subject: n, requests: reqs}
			}
		}
		return nil
	})
	if errors.Is(err, connectors.ErrCannotScan) {
		sw.cannot = fmt.Sprintf("%s (%s, no scan configured)", in.Name, in.Type)
		return sw, err
	}
	if err != nil {
		return sw, err
	}
	sw.found = len(targets)
	if r.dryRun {
		return sw, nil
	}
	for _, t := range targets {
		n, err := r.erase(ctx, in, t)
		if err != nil {
			sw.failures = append(sw.failures, fmt.Sprintf("erase failed for request %s: %v", strings.Join(t.requests, ", "), err))
			continue
		}
		sw.records += n
	}
	return sw, nil
}

// erase erases one found person and records it on each of their requests
// (flagging them for staff when the replayer flags).
func (r *replayer) erase(ctx context.Context, in worker.Instance, t *replayTarget) (int64, error) {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	o, err := in.Connector.Erase(cctx, t.subject)
	if err != nil {
		return 0, errors.New(t.subject.Redact(err.Error()))
	}
	now := erasure.SystemClock()
	for _, id := range t.requests {
		err := r.store.InTx(ctx, func(tx store.Tx) error {
			req, err := tx.LockRequest(ctx, id)
			if err != nil {
				return err
			}
			if _, err := tx.AppendEvent(ctx, erasure.NewEvent(id, "", erasure.EventReplayErased, r.actor(), r.why(),
				map[string]any{"connector": in.Name, "records": o.Records, "evidence": o.Evidence}, now)); err != nil {
				return err
			}
			if r.flag == nil {
				return nil
			}
			return r.flag(ctx, tx, &req, in.Name, o.Records, now)
		})
		if errors.Is(err, store.ErrNotFound) {
			continue // purged under retention: nothing to record it on
		}
		if err != nil {
			return o.Records, err
		}
	}
	r.log.Info("replay erased", zap.String("connector", in.Name), zap.Strings("request_ids", t.requests), zap.Int64("records", o.Records))
	return o.Records, nil
}

// runRewrap re-wraps every live data key with the active key-encryption
// key, so an older one can be removed from the config and destroyed.
func runRewrap(ctx context.Context, e env, args []string) error {
	cfg, err := configCommand("rewrap", e, args, nil)
	if err != nil {
		return err
	}
	keys, err := loadKeyRing(cfg.Encryption, e.getenv)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, e.getenv, keys, false, zap.NewNop())
	if err != nil {
		return err
	}
	defer st.Close()
	total := 0
	for {
		done, remaining, err := st.RewrapDataKeys(ctx, 500)
		total += done
		if err != nil {
			return err
		}
		if remaining == 0 {
			break
		}
	}
	fmt.Fprintf(e.stdout, "re-wrapped %d data key(s); all live data keys are under key %s\n", total, keys.Active())
	return nil
}
