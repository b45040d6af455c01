package connectors

import (
	"context"
	"fmt"
)

// BatchEraser is implemented by connectors whose vendor erases many people
// with one call: Amplitude takes 100 ids a deletion, Mixpanel 1,999 a
// task, Segment 5,000 a regulation, SendGrid 100 contact ids a delete.
// The runtime gathers erase tasks of one instance, from many requests, for
// a short window (the instance's batch_window) and hands them over
// together; each person's outcome is still recorded on their own request.
//
// Erase stays: the runtime calls it when a batch of one is all there is,
// and for a person whose batch failed on their account.
type BatchEraser interface {
	Connector
	// BatchLimit is the most subjects one EraseBatch may be given: the
	// vendor's documented maximum per call.
	BatchLimit() int
	// EraseBatch erases every subject with as few vendor calls as it can,
	// and returns one Item per subject, in the order given. An Item's Err
	// fails that subject alone (no identifier the vendor needs, say); an
	// error returned fails the whole call, and the runtime splits the batch
	// and tries the halves, so one subject the vendor refuses never holds
	// up the others. Like Erase it must be idempotent.
	//
	// A vendor job started for many subjects gives each of them a JobRef
	// of their own (the job and what of it is theirs), which Poll reads
	// alone and PollBatch together.
	EraseBatch(ctx context.Context, subjects []Subject) ([]Item, error)
}

// BatchPoller is implemented by batch erasers whose vendor reports on a
// job for all its subjects at once: the runtime gathers poll tasks as it
// gathers erase tasks, and PollBatch asks about each vendor job once.
type BatchPoller interface {
	Poller
	// PollBatch reports on every ref, one Item per ref in the order given;
	// refs naming the same vendor job cost one call. Errors as EraseBatch.
	PollBatch(ctx context.Context, refs []string) ([]Item, error)
}

// Item is one subject's part of a batch call: its outcome, or the error
// that failed it alone.
type Item struct {
	Outcome Outcome
	Err     error
}

// One is a batch call made for one subject or ref: the Erase of a
// BatchEraser is One(ctx, c.EraseBatch, s), its Poll One(ctx, c.PollBatch,
// ref). A batch answering for other than one is a connector bug, reported
// as CheckItems does.
func One[T any](ctx context.Context, batch func(context.Context, []T) ([]Item, error), v T) (Outcome, error) {
	items, err := batch(ctx, []T{v})
	if err == nil {
		err = CheckItems(items, 1)
	}
	if err != nil {
		return Outcome{}, err
	}
	return items[0].Outcome, items[0].Err
}

// CheckItems checks that a batch call answered for each of the n subjects
// or refs it was given: a connector bug otherwise, never to be guessed at.
func CheckItems(items []Item, n int) error {
	if len(items) != n {
		return Permanentf("batch call answered for %d of %d", len(items), n)
	}
	return nil
}

// Chunks splits n items into runs of at most size: [start, end) pairs,
// for a batch larger than one vendor call takes.
//
//	for _, c := range connectors.Chunks(len(ids), 100) { call(ids[c[0]:c[1]]) }
func Chunks(n, size int) [][2]int {
	if size <= 0 {
		panic(fmt.Sprintf("connectors.Chunks: size %d", size))
	}
	var out [][2]int
	for i := 0; i < n; i += size {
		out = append(out, [2]int{i, min(i+size, n)})
	}
	return out
}

// BatchVerifier is implemented by batch erasers whose vendor looks many
// people up with one call (SendGrid's search by a list of emails, a SOQL
// query with an IN list): after a batch, the runtime's post-erasure
// lookups cost a call a batch instead of a call a person. A subject still
// found, or whose lookup failed, is looked up again alone with Verify.
type BatchVerifier interface {
	Verifier
	// VerifyBatch looks every subject up, one Checked per subject in the
	// order given. Records in a recoverable state remain, as for Verify.
	VerifyBatch(ctx context.Context, subjects []Subject) ([]Checked, error)
}

// Checked is one subject's part of a batch lookup.
type Checked struct {
	Verification Verification
	Err          error
}

// RefGroups are a PollBatch's refs grouped by the vendor job they name,
// so that each job is asked about once.
type RefGroups[R any] struct {
	// Items holds one Item per ref; a ref that could not be read has its
	// Err, the others are the caller's to fill.
	Items []Item
	// Refs holds each ref decoded (the zero R for one not read).
	Refs []R
	// Jobs are the jobs named, in the order first named; ByJob the
	// indexes of each job's refs.
	Jobs  []string
	ByJob map[string][]int
}

// GroupRefs decodes every ref with decode, which returns it read and the
// job it names, and groups them by job.
//
//	g := connectors.GroupRefs(refs, func(ref string) (jobRef, string, error) { j, err := parse(ref); return j, j.ID, err })
//	for _, job := range g.Jobs { status := get(job); for _, i := range g.ByJob[job] { g.Items[i] = judge(g.Refs[i], status) } }
func GroupRefs[R any](refs []string, decode func(ref string) (R, string, error)) RefGroups[R] {
	g := RefGroups[R]{Items: make([]Item, len(refs)), Refs: make([]R, len(refs)), ByJob: map[string][]int{}}
	for i, ref := range refs {
		r, job, err := decode(ref)
		if err != nil {
			g.Items[i].Err = err
			continue
		}
		g.Refs[i] = r
		if _, ok := g.ByJob[job]; !ok {
			g.Jobs = append(g.Jobs, job)
		}
		g.ByJob[job] = append(g.ByJob[job], i)
	}
	return g
}
