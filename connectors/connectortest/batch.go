package connectortest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
)

// runBatch is the part of the suite for connectors.BatchEraser: Run calls
// it for every connector that implements it.
func runBatch(t *testing.T, h Harness, b connectors.BatchEraser) {
	if b.BatchLimit() < 2 {
		t.Fatalf("BatchLimit() = %d: a batch eraser takes at least two subjects a call", b.BatchLimit())
	}
	t.Run("BatchErasesEachSubjectAlone", func(t *testing.T) { batchEach(t, h) })
	t.Run("BatchTwiceIsNotFound", func(t *testing.T) { batchTwice(t, h) })
	t.Run("BatchUnusableSubjectFailsAlone", func(t *testing.T) { batchUnusable(t, h) })
	t.Run("BatchCancelledErasesNothing", func(t *testing.T) { batchCancelled(t, h) })
	t.Run("BatchHostileTouchesNothingElse", func(t *testing.T) { batchHostile(t, h) })
	t.Run("BatchAtTheLimit", func(t *testing.T) { batchFull(t, h) })
	if v, ok := b.(connectors.BatchVerifier); ok {
		t.Run("BatchVerifyFindsThenNone", func(t *testing.T) { batchVerify(t, h, v) })
	}
}

// batchVerify: a batch lookup finds each seeded subject before erasure
// and none after, finds nothing of a subject never seeded, and refuses a
// subject without identifiers on their own.
func batchVerify(t *testing.T, h Harness, v connectors.BatchVerifier) {
	a, b, unknown := h.Subject(900), h.Subject(901), h.Subject(902)
	h.Seed(t, a)
	h.Seed(t, b)
	subjects := []connectors.Subject{a, unknown, {}, b}
	ctx := ctxFor(t)
	before, err := v.VerifyBatch(ctx, subjects)
	if err != nil {
		t.Fatalf("VerifyBatch before erase: %v", err)
	}
	if len(before) != len(subjects) {
		t.Fatalf("VerifyBatch answered for %d of %d", len(before), len(subjects))
	}
	for _, i := range []int{0, 3} {
		if before[i].Err != nil || before[i].Verification.Remaining == 0 {
			t.Errorf("subject %d before erase: %d remaining, %v; want the seeded records found", i, before[i].Verification.Remaining, before[i].Err)
		}
	}
	if before[1].Err != nil || before[1].Verification.Remaining != 0 {
		t.Errorf("a subject never seeded: %d remaining, %v; want none", before[1].Verification.Remaining, before[1].Err)
	}
	if before[2].Err == nil || !IsPermanent(before[2].Err) {
		t.Errorf("a subject without identifiers: %v, want a permanent error of its own", before[2].Err)
	}
	if _, err := EraseBatchAndWait(ctx, v.(connectors.BatchEraser), []connectors.Subject{a, b}, h.PollTimeout); err != nil {
		t.Fatalf("EraseBatch: %v", err)
	}
	after, err := v.VerifyBatch(ctx, []connectors.Subject{a, b})
	if err != nil || len(after) != 2 {
		t.Fatalf("VerifyBatch after erase: %d answers, %v", len(after), err)
	}
	for i, c := range after {
		if c.Err != nil || c.Verification.Remaining != 0 {
			t.Errorf("subject %d after erase: %d remaining, %v; want none", i, c.Verification.Remaining, c.Err)
		}
	}
}

// EraseBatchAndWait erases subjects in one batch and polls every running
// job (with PollBatch when the connector has it) until each subject's part
// is done or timeout passes.
func EraseBatchAndWait(ctx context.Context, c connectors.BatchEraser, subjects []connectors.Subject, timeout time.Duration) ([]connectors.Item, error) {
	items, err := c.EraseBatch(ctx, subjects)
	if err != nil {
		return nil, err
	}
	if err := connectors.CheckItems(items, len(subjects)); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		var running []int
		for i, it := range items {
			if it.Err == nil && it.Outcome.Status == connectors.StatusRunning {
				if it.Outcome.JobRef == "" {
					return nil, fmt.Errorf("subject %d: running without a job reference", i)
				}
				running = append(running, i)
			}
		}
		if len(running) == 0 {
			return items, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d jobs still running after %s", len(running), timeout)
		}
		select {
		case <-time.After(min(items[running[0]].Outcome.PollAfter, 200*time.Millisecond)):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if err := pollItems(ctx, c, items, running); err != nil {
			return nil, err
		}
	}
}

func pollItems(ctx context.Context, c connectors.Connector, items []connectors.Item, running []int) error {
	refs := make([]string, len(running))
	for j, i := range running {
		refs[j] = items[i].Outcome.JobRef
	}
	if bp, ok := c.(connectors.BatchPoller); ok {
		got, err := bp.PollBatch(ctx, refs)
		if err != nil {
			return fmt.Errorf("PollBatch: %w", err)
		}
		if err := connectors.CheckItems(got, len(refs)); err != nil {
			return err
		}
		for j, i := range running {
			items[i] = got[j]
		}
		return nil
	}
	p, ok := c.(connectors.Poller)
	if !ok {
		return errors.New("connector returned running but does not implement Poller")
	}
	for j, i := range running {
		out, err := p.Poll(ctx, refs[j])
		items[i] = connectors.Item{Outcome: out, Err: err}
	}
	return nil
}

func batchOf(t *testing.T, h Harness) connectors.BatchEraser {
	b, ok := h.New(t).(connectors.BatchEraser)
	if !ok {
		t.Fatal("the connector stopped being a BatchEraser")
	}
	return b
}

// checkErased checks item i reports the erasure of the want records
// seeded, and that none remain.
func checkErased(t *testing.T, h Harness, it connectors.Item, s connectors.Subject, want int64, i int) {
	t.Helper()
	if it.Err != nil {
		t.Errorf("subject %d: %v", i, it.Err)
		return
	}
	out := it.Outcome
	switch {
	case out.Status != connectors.StatusErased:
		t.Errorf("subject %d: status %q, want %q", i, out.Status, connectors.StatusErased)
	case !out.Uncounted && out.Records != want:
		t.Errorf("subject %d: %d records reported, %d seeded", i, out.Records, want)
	case out.Uncounted && out.Records != 0:
		t.Errorf("subject %d: uncounted with %d records", i, out.Records)
	}
	if n := h.Count(t, s); n != 0 {
		t.Errorf("subject %d: %d records remain after the batch", i, n)
	}
	checkEvidence(t, out, s)
}

func batchEach(t *testing.T, h Harness) {
	const seeded = 4
	var subjects []connectors.Subject
	var want []int64
	for i := range seeded {
		s := h.Subject(800 + i)
		subjects, want = append(subjects, s), append(want, h.Seed(t, s))
	}
	unknown := h.Subject(850)
	subjects = append(subjects[:2], append([]connectors.Subject{unknown}, subjects[2:]...)...)
	want = append(want[:2], append([]int64{0}, want[2:]...)...)
	bystander := h.Subject(851)
	keep := h.Seed(t, bystander)
	items, err := EraseBatchAndWait(ctxFor(t), batchOf(t, h), subjects, h.PollTimeout)
	if err != nil {
		t.Fatalf("EraseBatch: %v", err)
	}
	for i, it := range items {
		if want[i] == 0 {
			untold := it.Err == nil && h.untold(it.Outcome)
			if !untold && (it.Err != nil || it.Outcome.Status != connectors.StatusNotFound) {
				t.Errorf("subject %d (never seeded): %q, %v; want not_found (or, for a system that cannot tell, erased uncounted)", i, it.Outcome.Status, it.Err)
			}
			continue
		}
		checkErased(t, h, it, subjects[i], want[i], i)
	}
	if n := h.Count(t, bystander); n != keep {
		t.Errorf("a subject outside the batch lost data: %d records left of %d", n, keep)
	}
}

func batchTwice(t *testing.T, h Harness) {
	subjects := []connectors.Subject{h.Subject(860), h.Subject(861)}
	for _, s := range subjects {
		h.Seed(t, s)
	}
	b := batchOf(t, h)
	if _, err := EraseBatchAndWait(ctxFor(t), b, subjects, h.PollTimeout); err != nil {
		t.Fatalf("first EraseBatch: %v", err)
	}
	items, err := EraseBatchAndWait(ctxFor(t), b, subjects, h.PollTimeout)
	if err != nil {
		t.Fatalf("second EraseBatch: %v", err)
	}
	for i, it := range items {
		if it.Err == nil && h.untold(it.Outcome) {
			continue
		}
		if it.Err != nil || it.Outcome.Status != connectors.StatusNotFound || it.Outcome.Records != 0 {
			t.Errorf("subject %d erased again: %q with %d records, %v; want not_found", i, it.Outcome.Status, it.Outcome.Records, it.Err)
		}
	}
}

// batchUnusable: a subject without any identifier the connector needs
// fails on its own, with a permanent error; the others are erased.
func batchUnusable(t *testing.T, h Harness) {
	a, b := h.Subject(870), h.Subject(871)
	wa, wb := h.Seed(t, a), h.Seed(t, b)
	items, err := EraseBatchAndWait(ctxFor(t), batchOf(t, h), []connectors.Subject{a, {}, b}, h.PollTimeout)
	if err != nil {
		t.Fatalf("EraseBatch with one unusable subject failed as a whole: %v", err)
	}
	if items[1].Err == nil {
		t.Errorf("a subject with no identifiers: %q, want a permanent error of its own", items[1].Outcome.Status)
	} else if !IsPermanent(items[1].Err) {
		t.Errorf("a subject with no identifiers failed retryably (retrying will not help): %v", items[1].Err)
	}
	checkErased(t, h, items[0], a, wa, 0)
	checkErased(t, h, items[2], b, wb, 2)
}

func batchCancelled(t *testing.T, h Harness) {
	subjects := []connectors.Subject{h.Subject(880), h.Subject(881)}
	seeded := []int64{h.Seed(t, subjects[0]), h.Seed(t, subjects[1])}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	items, err := batchOf(t, h).EraseBatch(ctx, subjects)
	if err == nil {
		for i, it := range items {
			if it.Err == nil {
				t.Errorf("subject %d: EraseBatch with a cancelled context succeeded with %q", i, it.Outcome.Status)
			}
		}
	} else if IsPermanent(err) {
		t.Errorf("a cancelled context was classified permanent: %v", err)
	}
	for i, s := range subjects {
		if n := h.Count(t, s); n != seeded[i] {
			t.Errorf("subject %d: a cancelled EraseBatch removed data: %d of %d records left", i, n, seeded[i])
		}
	}
}

func batchHostile(t *testing.T, h Harness) {
	bystanders := []connectors.Subject{h.Subject(890), h.Subject(891)}
	keep := []int64{h.Seed(t, bystanders[0]), h.Seed(t, bystanders[1])}
	items, err := batchOf(t, h).EraseBatch(ctxFor(t), h.Hostile)
	if err != nil && !IsPermanent(err) {
		t.Errorf("a batch of hostile subjects refused retryably (retrying will not help): %v", err)
	}
	for i, it := range items {
		if it.Err == nil && it.Outcome.Status == connectors.StatusErased {
			t.Errorf("hostile subject %d erased %d records; nothing was seeded for it", i, it.Outcome.Records)
		}
	}
	for i, b := range bystanders {
		if n := h.Count(t, b); n != keep[i] {
			t.Errorf("a hostile identifier removed another subject's data: %d of %d records left", n, keep[i])
		}
	}
}

// batchFull erases as many subjects as one call takes (up to 120, past
// the 100 that several vendors cap a call at), all of them seeded.
func batchFull(t *testing.T, h Harness) {
	b := batchOf(t, h)
	n := min(b.BatchLimit(), 120)
	subjects := make([]connectors.Subject, n)
	want := make([]int64, n)
	for i := range subjects {
		subjects[i] = h.Subject(5000 + i)
		want[i] = h.Seed(t, subjects[i])
	}
	items, err := EraseBatchAndWait(ctxFor(t), b, subjects, h.PollTimeout)
	if err != nil {
		t.Fatalf("EraseBatch of %d: %v", n, err)
	}
	for i, it := range items {
		checkErased(t, h, it, subjects[i], want[i], i)
	}
}

// Batcher is a connector that erases and polls many people at once: every
// batching vendor connector is one.
type Batcher interface {
	connectors.BatchEraser
	connectors.BatchPoller
}

// AsBatcher is c as a Batcher; it fails t when c is not one.
//
//	items, err := connectortest.AsBatcher(t, instance(t, f)).EraseBatch(ctx, connectortest.Subjects(1, 250))
func AsBatcher(t testing.TB, c connectors.Connector) Batcher {
	t.Helper()
	b, ok := c.(Batcher)
	if !ok {
		t.Fatalf("the %T connector is not a batch eraser and poller", c)
	}
	return b
}

// Subjects are VendorSubject(from) … VendorSubject(from+n-1).
func Subjects(from, n int) []connectors.Subject {
	out := make([]connectors.Subject, n)
	for i := range out {
		out[i] = VendorSubject(from + i)
	}
	return out
}

// SeedAll seeds each subject in v and returns the records seeded.
func SeedAll(v Vendor, subjects []connectors.Subject) int64 {
	var n int64
	for _, s := range subjects {
		n += v.Seed(s)
	}
	return n
}

// RunningRefs are the job references of items, every one of which must
// be running.
func RunningRefs(t testing.TB, items []connectors.Item) []string {
	t.Helper()
	refs := make([]string, len(items))
	for i, it := range items {
		if it.Err != nil || it.Outcome.Status != connectors.StatusRunning {
			t.Fatalf("item %d: %q, %v; want running", i, it.Outcome.Status, it.Err)
		}
		refs[i] = it.Outcome.JobRef
	}
	return refs
}
