package coordinator_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/coordinator"
	"github.com/lethe-dev/lethe/internal/erasure"
)

var (
	kCustomer = erasure.UserIDKind("customer")
	kApp      = erasure.UserIDKind("app")
	kCRM      = erasure.UserIDKind("crm")
	kLegacy   = erasure.UserIDKind("legacy")
)

func req(ks ...erasure.Kind) connectors.Requirement { return connectors.Requirement(ks) }

// resolving is a coordinator with a shop database that maps an email to a
// customer id and an app user id, a CRM that erases by email or its own
// id (and resolves that id), an analytics store keyed only by the app user
// id, and a legacy system keyed by an id nothing supplies.
func resolving(t *testing.T, opts ...func(*coordinator.Config)) bundle {
	return setup(t, append([]func(*coordinator.Config){func(c *coordinator.Config) {
		c.Connectors = []coordinator.Connector{
			{Name: "shop", Type: "sql", Plan: connectors.Plan{Keys: []connectors.Requirement{req(erasure.Email)},
				ResolveBy: []erasure.Kind{erasure.Email}, Gives: []erasure.Kind{kCustomer, kApp}}.Normalized()},
			{Name: "crm", Type: "hubspot", Plan: connectors.Plan{Keys: []connectors.Requirement{req(erasure.Email, kCRM)},
				ResolveBy: []erasure.Kind{erasure.Email}, Gives: []erasure.Kind{kCRM}}.Normalized()},
			{Name: "analytics", Type: "sql", Plan: connectors.Plan{Keys: []connectors.Requirement{req(kApp)}}.Normalized()},
			{Name: "legacy", Type: "sql", Plan: connectors.Plan{Keys: []connectors.Requirement{req(kLegacy)}}.Normalized()},
		}
	}}, opts...)...)
}

// phaseTasks returns the request's tasks of one phase by connector.
func phaseTasks(t *testing.T, b bundle, id, phase string) map[string]erasure.Task {
	t.Helper()
	ts, err := b.store.Tasks(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]erasure.Task{}
	for _, k := range ts {
		if k.Phase == phase {
			out[k.Connector] = k
		}
	}
	return out
}

func resolved(task erasure.Task, found map[erasure.Kind][]string) bus.Result {
	r := result(task, bus.KindResolve, bus.ResultResolved)
	r.Identifiers, r.SearchedBy = found, task.SearchedBy
	return r
}

func kindsOf(msgs []bus.Task) map[string]string {
	out := map[string]string{}
	for _, m := range msgs {
		out[m.Connector] = m.Kind
	}
	return out
}

func fileEmail(t *testing.T, b bundle, email string) erasure.Request {
	t.Helper()
	r, _, err := b.c.File(context.Background(), coordinator.FileInput{
		Subject: erasure.Subject{Email: email}, Jurisdiction: "gdpr", Source: "api", Actor: "api:test"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestResolutionComesBeforeErasure(t *testing.T) {
	b := resolving(t)
	ctx := context.Background()
	r := fileEmail(t, b, "ada@example.com")
	if got := kindsOf(outbox(t, b)); len(got) != 2 || got["shop"] != bus.KindResolve || got["crm"] != bus.KindResolve {
		t.Fatalf("filing sent %v; want only the two resolvers' look-ups", got)
	}
	if len(phaseTasks(t, b, r.ID, erasure.PhaseErase)) != 0 {
		t.Fatal("erase tasks exist before resolution ended")
	}
	res := phaseTasks(t, b, r.ID, erasure.PhaseResolve)
	apply(t, b, resolved(res["shop"], map[erasure.Kind][]string{kCustomer: {"c-1001"}, kApp: {" app-7 "}}))
	if len(outbox(t, b)) != 0 || len(phaseTasks(t, b, r.ID, erasure.PhaseErase)) != 0 {
		t.Fatal("erasure began while the CRM was still looking the person up")
	}
	got, _ := b.store.Request(ctx, r.ID)
	if got.Subject.Get(kApp) != "app-7" || got.Subject.Get(kCustomer) != "c-1001" || got.Sources[kApp] != "shop" || got.Sources[erasure.Email] != erasure.SourceRequest {
		t.Fatalf("after the shop's answer: subject %+v, sources %v", got.Subject, got.Sources)
	}
	apply(t, b, resolved(res["crm"], nil)) // the CRM does not know her
	msgs := outbox(t, b)
	if got := kindsOf(msgs); len(got) != 3 || got["shop"] != bus.KindErase || got["crm"] != bus.KindErase || got["analytics"] != bus.KindErase {
		t.Fatalf("after resolution: %v", got)
	}
	erase := phaseTasks(t, b, r.ID, erasure.PhaseErase)
	if a := erase["analytics"]; a.Status != erasure.TaskQueued || !slices.Equal(a.SearchedBy, []erasure.Kind{kApp}) {
		t.Errorf("analytics: %s searched by %v", a.Status, a.SearchedBy)
	}
	if l := erase["legacy"]; l.Status != erasure.TaskNeedsIdentifier || !strings.Contains(l.Reason, "user_ids.legacy") {
		t.Errorf("legacy: %s (%s), want needs_identifier naming the kind", l.Status, l.Reason)
	}
	if got, _ := b.store.Request(ctx, r.ID); got.Status != erasure.RequestNeedsAttention {
		t.Errorf("request is %s with a system needing an identifier", got.Status)
	}
	for _, name := range []string{"shop", "crm", "analytics"} {
		apply(t, b, result(erase[name], bus.KindErase, bus.ResultErased))
	}
	if got, _ := b.store.Request(ctx, r.ID); got.Status != erasure.RequestNeedsAttention || b.cert.issued != 0 {
		t.Fatalf("completed (%s, %d certificates) while legacy was never searched", got.Status, b.cert.issued)
	}
	// Staff find the legacy id; the task is sent.
	if _, err := b.c.AddIdentifiers(ctx, r.ID, "console:ada", "found in the old ticket system", map[erasure.Kind]string{kLegacy: "L-9"}); err != nil {
		t.Fatal(err)
	}
	if got := kindsOf(outbox(t, b)); len(got) != 1 || got["legacy"] != bus.KindErase {
		t.Fatalf("after adding the legacy id: %v", got)
	}
	got, _ = b.store.Request(ctx, r.ID)
	if got.Status != erasure.RequestInProgress || got.Sources[kLegacy] != "staff:console:ada" {
		t.Errorf("after adding: %s, source %q", got.Status, got.Sources[kLegacy])
	}
	apply(t, b, result(phaseTasks(t, b, r.ID, erasure.PhaseErase)["legacy"], bus.KindErase, bus.ResultNotFound))
	if got, _ := b.store.Request(ctx, r.ID); got.Status != erasure.RequestCompleted || b.cert.issued != 1 {
		t.Fatalf("request %s, %d certificates", got.Status, b.cert.issued)
	}
	// The event log names kinds and sources, never the values.
	events, _ := b.store.Events(ctx, r.ID)
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
		for _, v := range []string{"ada@example.com", "c-1001", "app-7", "L-9"} {
			if strings.Contains(string(e.Data), v) || strings.Contains(e.Reason, v) {
				t.Errorf("event %s holds an identifier: %s", e.Type, e.Data)
			}
		}
	}
	for _, want := range []string{erasure.EventIdentifiersResolved, erasure.EventErasing, erasure.EventIdentifiersAdded, erasure.EventTaskReleased} {
		if !slices.Contains(types, want) {
			t.Errorf("no %s event in %v", want, types)
		}
	}
	// Suppressions cover the identifiers found, so replay finds the person by them.
	hits, _ := b.store.Suppressed(ctx, []string{newHasher().Hash(string(kApp), "app-7")})
	if len(hits) != 1 {
		t.Errorf("suppression entries for the resolved app id: %d", len(hits))
	}
}

func TestResolversAskedAgainByWhatOthersFound(t *testing.T) {
	b := setup(t, func(c *coordinator.Config) {
		c.Connectors = []coordinator.Connector{
			{Name: "shop", Type: "sql", Plan: connectors.Plan{ResolveBy: []erasure.Kind{erasure.Email}, Gives: []erasure.Kind{kCustomer}}.Normalized()},
			// The app's database knows customers by number only.
			{Name: "app", Type: "sql", Plan: connectors.Plan{Keys: []connectors.Requirement{req(kApp)},
				ResolveBy: []erasure.Kind{kCustomer, erasure.Phone}, Gives: []erasure.Kind{kApp}}.Normalized()},
		}
	})
	r := fileEmail(t, b, "bo@example.com")
	if got := kindsOf(outbox(t, b)); len(got) != 1 || got["shop"] != bus.KindResolve {
		t.Fatalf("filing sent %v; the app's resolver has nothing to look up by yet", got)
	}
	res := phaseTasks(t, b, r.ID, erasure.PhaseResolve)
	if res["app"].Status != erasure.TaskWaiting {
		t.Fatalf("app resolver %s, want waiting", res["app"].Status)
	}
	apply(t, b, resolved(res["shop"], map[erasure.Kind][]string{kCustomer: {"c-5"}}))
	if got := kindsOf(outbox(t, b)); len(got) != 1 || got["app"] != bus.KindResolve {
		t.Fatalf("after the customer id turned up: %v", got)
	}
	res = phaseTasks(t, b, r.ID, erasure.PhaseResolve)
	apply(t, b, resolved(res["app"], map[erasure.Kind][]string{kApp: {"u-5"}}))
	erase := phaseTasks(t, b, r.ID, erasure.PhaseErase)
	if erase["app"].Status != erasure.TaskQueued || !slices.Equal(erase["app"].SearchedBy, []erasure.Kind{kApp}) {
		t.Fatalf("app erase: %+v", erase["app"])
	}
	// A duplicate of an old answer changes nothing.
	if a := apply(t, b, resolved(res["app"], map[erasure.Kind][]string{kApp: {"u-other"}})); a != coordinator.AppliedStale {
		t.Errorf("duplicate resolve result: %s", a)
	}
	// Staff add a phone: the app's resolver, which looks up by phone too,
	// is asked again; the shop's (email only) is not.
	if _, err := b.c.AddIdentifiers(context.Background(), r.ID, "api:ops", "given on the phone", map[erasure.Kind]string{erasure.Phone: "+44 7700 900555"}); err != nil {
		t.Fatal(err)
	}
	if got := kindsOf(outbox(t, b)); len(got) != 2 || got["app"] != bus.KindResolve {
		t.Errorf("after a phone was added: %v (want the app erase from before and its resolver again)", got)
	}
	res = phaseTasks(t, b, r.ID, erasure.PhaseResolve)
	if res["app"].Attempt != 2 || res["shop"].Attempt != 1 {
		t.Errorf("attempts: app %d, shop %d", res["app"].Attempt, res["shop"].Attempt)
	}
}

func TestConflictingIdentifiersNeedAPerson(t *testing.T) {
	b := resolving(t)
	ctx := context.Background()
	r := fileEmail(t, b, "twins@example.com")
	outbox(t, b)
	res := phaseTasks(t, b, r.ID, erasure.PhaseResolve)
	apply(t, b, resolved(res["crm"], map[erasure.Kind][]string{kCRM: {"7"}}))
	apply(t, b, resolved(res["shop"], map[erasure.Kind][]string{kCustomer: {"c-1", "c-2"}, kApp: {"app-1"},
		"user_ids.unrelated": {"x"}, erasure.Phone: {"not a phone"}}))
	res = phaseTasks(t, b, r.ID, erasure.PhaseResolve)
	shop := res["shop"]
	if shop.Status != erasure.TaskDead || !strings.Contains(shop.LastError, "2 different user_ids.customer values") {
		t.Fatalf("shop resolver: %s %q", shop.Status, shop.LastError)
	}
	got, _ := b.store.Request(ctx, r.ID)
	if got.Status != erasure.RequestNeedsAttention || got.Subject.Has(kCustomer) || got.Subject.Get(kApp) != "app-1" || got.Subject.Has("user_ids.unrelated") {
		t.Fatalf("request %s, subject %+v: the agreeing kind merges, the conflicting and undeclared ones do not", got.Status, got.Subject)
	}
	if len(phaseTasks(t, b, r.ID, erasure.PhaseErase)) != 0 {
		t.Fatal("erasure began with a resolver dead")
	}
	if _, err := b.c.Exempt(ctx, r.ID, "shop", "art17-3-e", "api:ops", "x"); erasure.ErrorCode(err) != erasure.EConflict {
		t.Errorf("exempting a look-up: %v", err)
	}
	if _, err := b.c.NotApplicable(ctx, r.ID, "shop", "api:ops", ""); erasure.ErrorField(err) != "reason" {
		t.Errorf("not applicable without a reason: %v", err)
	}
	if _, err := b.c.NotApplicable(ctx, r.ID, "shop", "api:ops", "two shop accounts: the second has its own request"); err != nil {
		t.Fatal(err)
	}
	erase := phaseTasks(t, b, r.ID, erasure.PhaseErase)
	if len(erase) != 4 || erase["crm"].Status != erasure.TaskQueued || !slices.Equal(erase["crm"].SearchedBy, []erasure.Kind{erasure.Email, kCRM}) {
		t.Fatalf("erase tasks after the look-up was declared not applicable: %+v", erase)
	}
	if _, err := b.c.NotApplicable(ctx, r.ID, "crm", "api:ops", "x"); erasure.ErrorCode(err) != erasure.EConflict {
		t.Errorf("declaring a queued task not applicable: %v", err)
	}
	if _, err := b.c.AddIdentifiers(ctx, r.ID, "api:ops", "x", map[erasure.Kind]string{kApp: "app-2"}); erasure.ErrorCode(err) != erasure.EConflict {
		t.Errorf("replacing an identifier: %v", err)
	}
	for _, bad := range []map[erasure.Kind]string{nil, {"user_id:legacy": "1"}, {erasure.Email: "nope"}} {
		if _, err := b.c.AddIdentifiers(ctx, r.ID, "api:ops", "x", bad); erasure.ErrorCode(err) != erasure.EInvalid {
			t.Errorf("AddIdentifiers(%v): %v", bad, err)
		}
	}
}

func TestOptionalAuthorityAndOrder(t *testing.T) {
	b := resolving(t, func(c *coordinator.Config) {
		c.Connectors[0].AuthorityFor = []erasure.Kind{kApp}                           // the shop issues app ids
		c.Connectors[3].Optional = "only customers from before 2019 have a legacy id" // legacy
		c.Connectors = append(c.Connectors, coordinator.Connector{Name: "backup-index", Type: "sql",
			Plan: connectors.Plan{Keys: []connectors.Requirement{req(erasure.Email)}}.Normalized(), EraseAfter: []string{"shop", "crm"}})
	})
	ctx := context.Background()
	r := fileEmail(t, b, "nobody@example.com")
	outbox(t, b)
	res := phaseTasks(t, b, r.ID, erasure.PhaseResolve)
	apply(t, b, resolved(res["shop"], nil))
	apply(t, b, resolved(res["crm"], nil))
	erase := phaseTasks(t, b, r.ID, erasure.PhaseErase)
	if a := erase["analytics"]; a.Status != erasure.TaskNotApplicable || !strings.Contains(a.Reason, "shop, which issues user_ids.app, has none") {
		t.Errorf("analytics: %s %q", a.Status, a.Reason)
	}
	if l := erase["legacy"]; l.Status != erasure.TaskNotApplicable || !strings.Contains(l.Reason, "before 2019") {
		t.Errorf("legacy: %s %q", l.Status, l.Reason)
	}
	if got := kindsOf(outbox(t, b)); len(got) != 2 || got["backup-index"] != "" {
		t.Fatalf("sent %v; backup-index must wait for shop and crm", got)
	}
	apply(t, b, result(erase["shop"], bus.KindErase, bus.ResultNotFound))
	if len(outbox(t, b)) != 0 {
		t.Fatal("backup-index sent before crm was done")
	}
	apply(t, b, result(erase["crm"], bus.KindErase, bus.ResultErased))
	if got := kindsOf(outbox(t, b)); got["backup-index"] != bus.KindErase {
		t.Fatalf("after both: %v", got)
	}
	apply(t, b, result(phaseTasks(t, b, r.ID, erasure.PhaseErase)["backup-index"], bus.KindErase, bus.ResultNotFound))
	if got, _ := b.store.Request(ctx, r.ID); got.Status != erasure.RequestCompleted {
		t.Errorf("request %s", got.Status)
	}
}

func TestFailingResolverIsRetriedNeverSkipped(t *testing.T) {
	b := resolving(t)
	r := fileEmail(t, b, "flaky@example.com")
	outbox(t, b)
	res := phaseTasks(t, b, r.ID, erasure.PhaseResolve)
	fail := result(res["crm"], bus.KindResolve, bus.ResultFailed)
	fail.Error = &bus.ResultError{Message: "503 from the CRM"}
	apply(t, b, fail)
	apply(t, b, resolved(res["shop"], nil))
	if len(phaseTasks(t, b, r.ID, erasure.PhaseErase)) != 0 {
		t.Fatal("erasure began while a resolver was failing")
	}
	b.clock.Advance(time.Hour)
	if n, err := b.c.ScheduleDue(context.Background()); err != nil || n != 1 {
		t.Fatalf("ScheduleDue = %d, %v", n, err)
	}
	if got := kindsOf(outbox(t, b)); got["crm"] != bus.KindResolve {
		t.Fatalf("the retry was sent as %v", got)
	}
	crm := phaseTasks(t, b, r.ID, erasure.PhaseResolve)["crm"]
	if crm.Attempt != 2 {
		t.Fatalf("attempt %d", crm.Attempt)
	}
	// An erase result for a resolve task is not news.
	if a := apply(t, b, result(crm, bus.KindErase, bus.ResultErased)); a != coordinator.AppliedStale {
		t.Errorf("erase result for a look-up: %s", a)
	}
	apply(t, b, resolved(crm, map[erasure.Kind][]string{kCRM: {"42"}}))
	if len(phaseTasks(t, b, r.ID, erasure.PhaseErase)) != 4 {
		t.Fatal("erasure did not begin once the look-up succeeded")
	}
}

func newHasher() *erasure.Hasher {
	h, _ := erasure.NewHasher(bytes.Repeat([]byte{1}, 32))
	return h
}

// TestEvidenceNeverCarriesIdentifiers: a connector in another process that
// echoes identifiers in its evidence does not get them into the event log
// or the task (and so the certificate).
func TestEvidenceNeverCarriesIdentifiers(t *testing.T) {
	b := resolving(t)
	r := fileEmail(t, b, "echo@example.com")
	outbox(t, b)
	res := phaseTasks(t, b, r.ID, erasure.PhaseResolve)
	shop := resolved(res["shop"], map[erasure.Kind][]string{kApp: {"app-echo-77"}})
	shop.Evidence = []erasure.Evidence{{Kind: "looked up echo@example.com", Value: "found app-echo-77"}}
	apply(t, b, shop)
	task := phaseTasks(t, b, r.ID, erasure.PhaseResolve)["shop"]
	events, _ := b.store.Events(context.Background(), r.ID)
	for _, v := range []string{"echo@example.com", "app-echo-77"} {
		for _, ev := range task.Evidence {
			if strings.Contains(ev.Kind+ev.Value, v) {
				t.Errorf("task evidence holds %q: %+v", v, ev)
			}
		}
		for _, e := range events {
			if strings.Contains(string(e.Data), v) {
				t.Errorf("event %s holds %q", e.Type, v)
			}
		}
	}
}
