package coordinator

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
)

// A request runs in two phases on the same machinery (store, outbox,
// JetStream, idempotent results):
//
//   - resolve: every resolver (a connector whose plan Gives identifiers)
//     looks the person up by what the request has; what they find is
//     added to the request's encrypted subject, and a resolver is asked
//     again when a kind it looks up by turns up. Each resolver runs at most
//     once per kind it looks up by, so the phase ends.
//   - erase: once no resolver is at work, every instance gets its erase
//     task: queued when the request has what its plan's keys require
//     (waiting while an instance it must follow, erase_after, is not
//     done), else needs_identifier for staff — or not_applicable when the
//     config says so (optional, or the kind's issuing resolver found none).
//
// Every step happens under the request's lock, in the transaction of the
// change that caused it, so crashes and replicas agree.

// resolvers lists the configured instances that look people up.
func (c *Coordinator) resolvers() []Connector {
	var out []Connector
	for _, cn := range c.cfg.Connectors {
		if cn.Plan.Resolves() {
			out = append(out, cn)
		}
	}
	return out
}

// begin starts a request's work: the resolve phase when resolvers are
// configured, else the erase phase at once.
func (c *Coordinator) begin(ctx context.Context, tx store.Tx, r *erasure.Request, actor string, now time.Time) error {
	for _, cn := range c.resolvers() {
		t := erasure.Task{ID: erasure.NewID(), RequestID: r.ID, Connector: cn.Name, ConnectorType: cn.Type,
			Phase: erasure.PhaseResolve, Status: erasure.TaskWaiting, Attempt: 1, CreatedAt: now, UpdatedAt: now}
		if by := cn.Plan.LooksUpBy(r.Subject); len(by) > 0 {
			t.Status, t.SearchedBy = erasure.TaskQueued, by
		}
		if err := c.createTask(ctx, tx, *r, t, actor, now); err != nil {
			return err
		}
	}
	_, err := c.advanceRequest(ctx, tx, r, now)
	return err
}

// pick returns the index of connector's task a staff action is about:
// the one not yet done (a connector has at most one: its resolver's
// look-up comes before its erasure), else its erase task; -1 if none.
func pick(tasks []erasure.Task, connector string) int {
	found := -1
	for i, t := range tasks {
		if t.Connector != connector {
			continue
		}
		if !t.Status.Done() {
			return i
		}
		if found < 0 || t.Phase != erasure.PhaseResolve {
			found = i
		}
	}
	return found
}

// createTask stores a new task with its event and, when it is queued,
// its message.
func (c *Coordinator) createTask(ctx context.Context, tx store.Tx, r erasure.Request, t erasure.Task, actor string, now time.Time) error {
	if err := tx.InsertTask(ctx, t); err != nil {
		return err
	}
	data := map[string]any{"connector": t.Connector, "type": t.ConnectorType, "attempt": t.Attempt,
		"phase": t.Phase, "status": t.Status}
	if len(t.SearchedBy) > 0 {
		data["searched_by"] = t.SearchedBy
	}
	if t.Reason != "" {
		data["reason"] = t.Reason
	}
	if _, err := tx.AppendEvent(ctx, erasure.NewEvent(r.ID, t.ID, erasure.EventTaskCreated, actor, "", data, now)); err != nil {
		return err
	}
	if t.Status != erasure.TaskQueued {
		return nil
	}
	m, err := taskMessage(r, t, kindFor(t), now)
	if err != nil {
		return err
	}
	return tx.Enqueue(ctx, m)
}

// kindFor is the message kind that (re)starts t.
func kindFor(t erasure.Task) string {
	if t.Phase == erasure.PhaseResolve {
		return bus.KindResolve
	}
	if t.IsRecheck() {
		return bus.KindRecheck
	}
	return bus.KindErase
}

// settle moves a request's phases on after any change: resolvers that
// can look up by new identifiers are asked again; when none is at work
// the erase phase begins; erase tasks whose turn or identifier has come
// are sent. tasks are the request's tasks as they stand in tx.
func (c *Coordinator) settle(ctx context.Context, tx store.Tx, r *erasure.Request, tasks []erasure.Task, now time.Time) error {
	if r.Status.Final() {
		return nil
	}
	busy := false
	for i := range tasks {
		t := &tasks[i]
		if t.Phase != erasure.PhaseResolve {
			continue
		}
		cn, ok := c.byName[t.Connector]
		switch {
		case t.Status.Active():
			busy = true
		case !ok:
			// no longer configured: nothing to ask again
		case t.Status == erasure.TaskWaiting || t.Status == erasure.TaskResolved:
			by := cn.Plan.LooksUpBy(r.Subject)
			if len(by) == 0 || subset(by, t.SearchedBy) {
				continue
			}
			event, reason := erasure.EventTaskReleased, "an identifier to look the person up by turned up"
			if t.Status == erasure.TaskResolved {
				t.Attempt++ // a new attempt: an answer to the last one is stale
				event, reason = erasure.EventTaskLookUpAgain, "new identifiers to look the person up by"
			}
			t.Status, t.SearchedBy, t.UpdatedAt, t.LastError = erasure.TaskQueued, by, now, ""
			if err := send(ctx, tx, *r, *t, bus.KindResolve, event, erasure.ActorCoordinator, reason, now); err != nil {
				return err
			}
			busy = true
		}
	}
	erasing := slices.ContainsFunc(tasks, func(t erasure.Task) bool { return t.Phase != erasure.PhaseResolve })
	switch {
	case erasing:
		return c.release(ctx, tx, r, tasks, now)
	case busy || slices.ContainsFunc(tasks, func(t erasure.Task) bool { return t.Status.NeedsPerson() }):
		return nil // resolvers at work, or one waits for a person
	}
	return c.beginErase(ctx, tx, r, tasks, now)
}

func subset(a, b []erasure.Kind) bool {
	for _, k := range a {
		if !slices.Contains(b, k) {
			return false
		}
	}
	return true
}

// beginErase ends resolution and gives every instance its erase task.
func (c *Coordinator) beginErase(ctx context.Context, tx store.Tx, r *erasure.Request, tasks []erasure.Task, now time.Time) error {
	for i := range tasks {
		t := &tasks[i]
		if t.Phase != erasure.PhaseResolve || t.Status != erasure.TaskWaiting {
			continue
		}
		// A resolver the request gave nothing to look up by.
		by := []erasure.Kind{}
		if cn, ok := c.byName[t.Connector]; ok {
			by = cn.Plan.ResolveBy
		}
		reason := "not looked up: the request has no " + kindList(by)
		if err := c.finishNotApplicable(ctx, tx, *r, t, erasure.ActorCoordinator, reason, now); err != nil {
			return err
		}
	}
	if _, err := tx.AppendEvent(ctx, erasure.NewEvent(r.ID, "", erasure.EventErasing, erasure.ActorCoordinator, "",
		map[string]any{"identifiers": r.Sources.List()}, now)); err != nil {
		return err
	}
	for _, cn := range c.cfg.Connectors {
		t := erasure.Task{ID: erasure.NewID(), RequestID: r.ID, Connector: cn.Name, ConnectorType: cn.Type,
			Phase: erasure.PhaseErase, Attempt: 1, CreatedAt: now, UpdatedAt: now}
		t.Status, t.Reason = c.eraseStatus(cn, *r, tasks)
		if t.Status == erasure.TaskQueued || t.Status == erasure.TaskWaiting {
			t.SearchedBy = cn.Plan.SearchedBy(r.Subject)
		}
		if t.Status == erasure.TaskNotApplicable {
			t.CompletedAt = now
		}
		if err := c.createTask(ctx, tx, *r, t, erasure.ActorCoordinator, now); err != nil {
			return err
		}
		tasks = append(tasks, t)
	}
	return nil
}

// eraseStatus is how an instance's erase task starts for r.
func (c *Coordinator) eraseStatus(cn Connector, r erasure.Request, tasks []erasure.Task) (erasure.TaskStatus, string) {
	missing := cn.Plan.Missing(r.Subject)
	if len(missing) == 0 {
		if len(cn.EraseAfter) > 0 {
			return erasure.TaskWaiting, "after " + strings.Join(cn.EraseAfter, ", ")
		}
		return erasure.TaskQueued, ""
	}
	if reason := c.noneIssued(missing, tasks); reason != "" {
		return erasure.TaskNotApplicable, reason
	}
	if cn.Optional != "" {
		return erasure.TaskNotApplicable, "no " + requirementList(missing) + " for this person; the system is optional: " + cn.Optional
	}
	return erasure.TaskNeedsIdentifier, c.needs(missing, tasks)
}

// noneIssued explains why the missing identifiers cannot exist, when for
// each of them a resolver that issues that kind (authority_for) looked the
// person up and found none; "" otherwise.
func (c *Coordinator) noneIssued(missing []erasure.Requirement, tasks []erasure.Task) string {
	var parts []string
	for _, req := range missing {
		why := ""
		for _, k := range req {
			for _, t := range tasks {
				cn, ok := c.byName[t.Connector]
				if t.Phase == erasure.PhaseResolve && t.Status == erasure.TaskResolved && ok &&
					slices.Contains(cn.AuthorityFor, k) && !slices.Contains(t.Found, k) {
					why = fmt.Sprintf("%s, which issues %s, has none for this person (looked up by %s)", t.Connector, k, kindList(t.SearchedBy))
					break
				}
			}
			if why != "" {
				break
			}
		}
		if why == "" {
			return ""
		}
		parts = append(parts, why)
	}
	return "holds nothing of this person: " + strings.Join(parts, "; ")
}

// needs says what a needs_identifier task is waiting for, and why no
// resolver supplied it.
func (c *Coordinator) needs(missing []erasure.Requirement, tasks []erasure.Task) string {
	var from []string
	for _, req := range missing {
		for _, k := range req {
			for _, cn := range c.resolvers() {
				if slices.Contains(cn.Plan.Gives, k) && !slices.Contains(from, cn.Name) {
					from = append(from, cn.Name)
				}
			}
		}
	}
	s := "needs " + requirementList(missing) + ": the request has none"
	if len(from) > 0 {
		s += " and " + strings.Join(from, ", ") + " found none"
	} else {
		s += " and no resolver supplies it"
	}
	return s + "; add it, or declare the system not applicable to this person"
}

func kindList(ks []erasure.Kind) string {
	if len(ks) == 0 {
		return "identifier"
	}
	parts := make([]string, len(ks))
	for i, k := range ks {
		parts[i] = string(k)
	}
	return strings.Join(parts, " or ")
}

func requirementList(rs []erasure.Requirement) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = strings.ReplaceAll(r.String(), "|", " or ")
	}
	return strings.Join(parts, " and ")
}

// release sends the erase tasks whose time has come: waiting ones whose
// erase_after instances are done, and needs_identifier ones the request
// now has the identifiers for.
func (c *Coordinator) release(ctx context.Context, tx store.Tx, r *erasure.Request, tasks []erasure.Task, now time.Time) error {
	done := map[string]bool{}
	for _, t := range tasks {
		if t.Phase != erasure.PhaseResolve && t.Status.Done() {
			done[t.Connector] = true
		}
	}
	for i := range tasks {
		t := &tasks[i]
		if t.Phase == erasure.PhaseResolve {
			continue
		}
		cn, ok := c.byName[t.Connector]
		if !ok {
			continue
		}
		switch t.Status {
		case erasure.TaskNeedsIdentifier:
			if !cn.Plan.Met(r.Subject) {
				continue
			}
			t.Status, t.Reason, t.UpdatedAt = erasure.TaskWaiting, "", now
			t.SearchedBy = cn.Plan.SearchedBy(r.Subject)
			if err := tx.UpdateTask(ctx, *t); err != nil {
				return err
			}
			fallthrough
		case erasure.TaskWaiting:
			if !allDone(cn.EraseAfter, done) {
				continue
			}
			t.Status, t.Reason, t.UpdatedAt = erasure.TaskQueued, "", now
			t.SearchedBy = cn.Plan.SearchedBy(r.Subject)
			if err := send(ctx, tx, *r, *t, bus.KindErase, erasure.EventTaskReleased, erasure.ActorCoordinator, "", now); err != nil {
				return err
			}
		}
	}
	return nil
}

func allDone(names []string, done map[string]bool) bool {
	for _, n := range names {
		if !done[n] {
			return false
		}
	}
	return true
}

// finishNotApplicable ends t as not applicable to the person, with why.
func (c *Coordinator) finishNotApplicable(ctx context.Context, tx store.Tx, r erasure.Request, t *erasure.Task, actor, reason string, now time.Time) error {
	if !t.Status.CanTransition(erasure.TaskNotApplicable) {
		return erasure.Errorf(erasure.EConflict, "a %s task cannot be declared not applicable", t.Status)
	}
	t.Status, t.Reason, t.UpdatedAt, t.CompletedAt = erasure.TaskNotApplicable, reason, now, now
	t.NextAttemptAt, t.NextPollAt, t.LastError = time.Time{}, time.Time{}, ""
	if err := tx.UpdateTask(ctx, *t); err != nil {
		return err
	}
	_, err := tx.AppendEvent(ctx, erasure.NewEvent(r.ID, t.ID, erasure.EventTaskNotApplicable, actor, reason,
		map[string]any{"connector": t.Connector, "phase": t.Phase}, now))
	return err
}

// merged is what a resolver's answer added to a request.
type merged struct {
	added     []erasure.Kind // kinds the request did not have
	found     []erasure.Kind // kinds reported with a usable value
	conflicts []string       // what could not be merged, for staff
	notes     []erasure.Evidence
}

// mergeResolution adds what a resolver found to r's subject: only kinds
// its plan says it gives, each value normalised. Several different values
// for one kind, or one that differs from the request's, are not merged
// but reported: Lethe holds one identifier per kind, and picking one
// would leave the other's data behind unseen.
func (c *Coordinator) mergeResolution(r *erasure.Request, cn Connector, found map[erasure.Kind][]string) merged {
	var m merged
	kinds := make([]erasure.Kind, 0, len(found))
	for k := range found {
		kinds = append(kinds, k)
	}
	erasure.SortKinds(kinds)
	for _, k := range kinds {
		if !slices.Contains(cn.Plan.Gives, k) {
			m.notes = append(m.notes, erasure.Evidence{Kind: "resolution", Value: fmt.Sprintf("%s ignored: the connector's plan does not give it", safeKind(k))})
			continue
		}
		var values []string
		invalid := 0
		for _, v := range found[k] {
			n, err := erasure.NormalizeValue(k, v)
			if err != nil {
				invalid++
				continue
			}
			if !slices.Contains(values, n) {
				values = append(values, n)
			}
		}
		if invalid > 0 {
			m.notes = append(m.notes, erasure.Evidence{Kind: "resolution", Value: fmt.Sprintf("%s: %d value(s) not usable as identifiers (malformed), ignored", k, invalid)})
		}
		switch have := r.Subject.Get(k); {
		case len(values) == 0:
			continue
		case len(values) > 1:
			m.conflicts = append(m.conflicts, fmt.Sprintf("%d different %s values", len(values), k))
			continue
		case have != "" && have != values[0]:
			m.conflicts = append(m.conflicts, fmt.Sprintf("a %s other than the one the request has", k))
			continue
		case have == "":
			r.Subject = r.Subject.With(k, values[0])
			if r.Sources == nil {
				r.Sources = erasure.Sources{}
			}
			r.Sources[k] = cn.Name
			m.added = append(m.added, k)
		}
		m.found = append(m.found, k)
	}
	return m
}

// safeKind keeps a kind a resolver made up (which might hold anything)
// out of evidence unless it is well formed.
func safeKind(k erasure.Kind) string {
	if _, err := erasure.ParseKind(string(k)); err != nil || len(k) > 80 {
		return "a malformed kind"
	}
	return string(k)
}

// storeIdentifiers writes r's grown subject (encrypted under its data
// key), the new kinds' sources and keyed hashes, and the event saying
// which kinds came from whom.
func (c *Coordinator) storeIdentifiers(ctx context.Context, tx store.Tx, r erasure.Request, added []erasure.Kind, eventType, actor, reason, from string, now time.Time) error {
	if err := tx.UpdateSubject(ctx, r); err != nil {
		return err
	}
	if err := tx.UpdateRequest(ctx, r); err != nil {
		return err
	}
	var hashes []erasure.IdentifierHash
	for _, k := range added {
		hashes = append(hashes, erasure.IdentifierHash{Kind: string(k), Hash: c.hasher.Hash(string(k), r.Subject.Get(k))})
	}
	if err := tx.AddSubjectHashes(ctx, r.ID, hashes); err != nil {
		return err
	}
	_, err := tx.AppendEvent(ctx, erasure.NewEvent(r.ID, "", eventType, actor, reason,
		map[string]any{"kinds": added, "from": from}, now))
	return err
}
