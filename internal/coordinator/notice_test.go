package coordinator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/coordinator"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
)

// notices drains the outbox and returns its notices as "kind request-id",
// failing on a notice that carries anything but the request id.
func notices(t *testing.T, b bundle) []string {
	t.Helper()
	var out []string
	err := b.store.InTx(context.Background(), func(tx store.Tx) error {
		msgs, err := tx.ClaimOutbox(context.Background(), 100)
		if err != nil {
			return err
		}
		var ids []int64
		for _, m := range msgs {
			ids = append(ids, m.ID)
			if m.TaskID != "" {
				continue
			}
			var n bus.Notice
			dec := json.NewDecoder(bytes.NewReader(m.Payload))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&n); err != nil {
				t.Errorf("notice payload %s: %v", m.Payload, err)
				continue
			}
			if m.Subject != bus.NoticeSubject(n.Kind) || n.V != bus.Version || n.RequestID != m.RequestID {
				t.Errorf("notice %s on %s", m.Payload, m.Subject)
			}
			out = append(out, n.Kind+" "+n.RequestID)
		}
		return tx.DeleteOutbox(context.Background(), ids)
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func TestPortalRequestsQueueNotices(t *testing.T) {
	b := setup(t, func(c *coordinator.Config) { c.Notify = true })
	ctx := context.Background()
	portal := func(hold erasure.RequestStatus) erasure.Request {
		req, _, err := b.c.File(ctx, coordinator.FileInput{Subject: erasure.Subject{Email: "held@example.com"}, Jurisdiction: "gdpr",
			Source: "portal", Actor: "portal", Hold: hold})
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	// Filing tells nobody: the portal itself sends the code.
	a := portal(erasure.RequestUnverified)
	if got := notices(t, b); len(got) != 0 {
		t.Errorf("filing queued %v", got)
	}
	// Verified: received, once, however often it is verified.
	for range 2 {
		if _, _, err := b.c.Verified(ctx, a.ID, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := notices(t, b); !slices.Equal(got, []string{"received " + a.ID}) {
		t.Errorf("after verification: %v", got)
	}
	// Extended: the reason goes to the person.
	if _, err := b.c.Extend(ctx, a.ID, "api:ops", "a vendor is slow", "complexity", a.DueAt.Add(30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := notices(t, b); !slices.Equal(got, []string{"extended " + a.ID}) {
		t.Errorf("after extension: %v", got)
	}
	// Completed: with the certificate.
	for _, task := range tasks(t, b, a.ID) {
		apply(t, b, result(task, bus.KindErase, bus.ResultErased))
	}
	if got := notices(t, b); !slices.Equal(got, []string{"completed " + a.ID}) {
		t.Errorf("after completion: %v", got)
	}
	// Denied after verification: told. An unverified request cannot be
	// denied (nobody proved the address; it expires by itself).
	p := portal(erasure.RequestPendingApproval)
	u := portal(erasure.RequestUnverified)
	if _, err := b.c.Deny(ctx, p.ID, "api:ops", "we could not confirm the request"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.c.Deny(ctx, u.ID, "api:ops", "no"); erasure.ErrorCode(err) != erasure.EConflict {
		t.Errorf("denying an unverified request: %v", err)
	}
	if got := notices(t, b); !slices.Equal(got, []string{"denied " + p.ID}) {
		t.Errorf("after denials: %v", got)
	}
	// Requests filed over the API notify nobody.
	req, _, err := b.c.File(ctx, coordinator.FileInput{Subject: erasure.Subject{Email: "api@example.com"}, Jurisdiction: "gdpr", Source: "api", Actor: "api:t"})
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks(t, b, req.ID) {
		apply(t, b, result(task, bus.KindErase, bus.ResultErased))
	}
	if got := notices(t, b); len(got) != 0 {
		t.Errorf("an API request queued %v", got)
	}
}

func TestNoNoticesWithoutANotifier(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	req, _, err := b.c.File(ctx, coordinator.FileInput{Subject: erasure.Subject{Email: "held@example.com"}, Jurisdiction: "gdpr",
		Source: "portal", Actor: "portal", Hold: erasure.RequestUnverified})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.c.Verified(ctx, req.ID, false, nil); err != nil {
		t.Fatal(err)
	}
	if got := notices(t, b); len(got) != 0 {
		t.Errorf("queued %v with Notify off", got)
	}
}
