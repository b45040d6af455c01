package erasure_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    erasure.Subject
		want  erasure.Subject
		field string // non-empty: must fail naming this field
	}{
		{"email lower-cased and trimmed", erasure.Subject{Email: "  Alice@Example.COM "}, erasure.Subject{Email: "alice@example.com"}, ""},
		{"phone separators removed", erasure.Subject{Phone: "+44 (7700) 900-123"}, erasure.Subject{Phone: "+447700900123"}, ""},
		{"full-width email read as typed", erasure.Subject{Email: "ｂｏｂ＠ｅｘａｍｐｌｅ．ｃｏｍ"}, erasure.Subject{Email: "bob@example.com"}, ""},
		{"full-width capitals", erasure.Subject{Email: "ＢＯＢ@example.com"}, erasure.Subject{Email: "bob@example.com"}, ""},
		{"ligature", erasure.Subject{Email: "\ufb01ona@example.com"}, erasure.Subject{Email: "fiona@example.com"}, ""},
		{"internationalised address kept", erasure.Subject{Email: "José@Bücher.de"}, erasure.Subject{Email: "josé@bücher.de"}, ""},
		{"full-width phone", erasure.Subject{Phone: "＋４４ ７７００ ９００１２３"}, erasure.Subject{Phone: "+447700900123"}, ""},
		{"invalid UTF-8 email", erasure.Subject{Email: "b\xffob@example.com"}, erasure.Subject{}, "subject.email"},
		{"phone 00 prefix", erasure.Subject{Phone: "0044 7700 900123"}, erasure.Subject{Phone: "+447700900123"}, ""},
		{"user ids trimmed", erasure.Subject{UserIDs: map[string]string{"shop": " 42 "}}, erasure.Subject{UserIDs: map[string]string{"shop": "42"}}, ""},
		{"nothing", erasure.Subject{}, erasure.Subject{}, "subject"},
		{"no at", erasure.Subject{Email: "alice.example.com"}, erasure.Subject{}, "subject.email"},
		{"display name", erasure.Subject{Email: "Alice <alice@example.com>"}, erasure.Subject{}, "subject.email"},
		{"no domain dot", erasure.Subject{Email: "alice@localhost"}, erasure.Subject{}, "subject.email"},
		{"two addresses", erasure.Subject{Email: "a@example.com, b@example.com"}, erasure.Subject{}, "subject.email"},
		{"control char", erasure.Subject{Email: "a\n@example.com"}, erasure.Subject{}, "subject.email"},
		{"too long", erasure.Subject{Email: strings.Repeat("a", 250) + "@example.com"}, erasure.Subject{}, "subject.email"},
		{"sql in email", erasure.Subject{Email: "x'; DROP TABLE customers;--@example.com"}, erasure.Subject{}, "subject.email"},
		{"phone without country", erasure.Subject{Phone: "07700900123"}, erasure.Subject{}, "subject.phone"},
		{"phone letters", erasure.Subject{Phone: "+44 CALL ME"}, erasure.Subject{}, "subject.phone"},
		{"bad system name", erasure.Subject{UserIDs: map[string]string{"../etc": "1"}}, erasure.Subject{}, "subject.user_ids"},
		{"empty user id", erasure.Subject{UserIDs: map[string]string{"shop": " "}}, erasure.Subject{}, "subject.user_ids.shop"},
		{"user id control", erasure.Subject{UserIDs: map[string]string{"shop": "a\x00b"}}, erasure.Subject{}, "subject.user_ids.shop"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.Normalize()
			if tc.field != "" {
				if erasure.ErrorCode(err) != erasure.EInvalid || erasure.ErrorField(err) != tc.field {
					t.Fatalf("Normalize() error = %v (field %q), want invalid %q", err, erasure.ErrorField(err), tc.field)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize(): %v", err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("Normalize() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestHasherAndRedact(t *testing.T) {
	t.Parallel()
	if _, err := erasure.NewHasher([]byte("short")); err == nil {
		t.Fatal("a short key was accepted")
	}
	h1, _ := erasure.NewHasher([]byte(strings.Repeat("k", 32)))
	h2, _ := erasure.NewHasher([]byte(strings.Repeat("j", 32)))
	s := erasure.Subject{Email: "alice@example.com", Phone: "+447700900123", UserIDs: map[string]string{"shop": "42"}}
	ref := h1.Ref(s)
	if len(ref.Identifiers) != 3 || ref.Identifiers[2].Kind != "user_ids.shop" {
		t.Fatalf("ref = %+v", ref)
	}
	if ref.Identifiers[0].Hash != h1.Hash("email", "alice@example.com") {
		t.Error("hash is not reproducible")
	}
	if ref.Identifiers[0].Hash == h2.Hash("email", "alice@example.com") || h1.KeyID() == h2.KeyID() {
		t.Error("different keys give the same hash or key id")
	}
	if ref.Identifiers[2].Hash != h1.Hash("user_id:shop", "42") {
		t.Error("a user id's hash changed with the spelling of its kind: hashes made before would no longer match")
	}
	if h1.Hash("email", "a") == h1.Hash("phone", "a") {
		t.Error("the kind is not part of the hash")
	}
	for _, id := range ref.Identifiers {
		if strings.Contains(id.Hash, "alice") {
			t.Error("hash contains the identifier")
		}
	}
	msg := s.Redact(`no contact "ALICE@example.com" (+447700900123)`)
	if strings.Contains(strings.ToLower(msg), "alice") || strings.Contains(msg, "900123") {
		t.Errorf("Redact left an identifier: %q", msg)
	}
}

func TestDueDate(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		j        erasure.Jurisdiction
		received string
		due      string
	}{
		{erasure.GDPR, "2026-03-15T10:00:00Z", "2026-04-15T10:00:00Z"},
		{erasure.GDPR, "2026-01-31T10:00:00Z", "2026-02-28T10:00:00Z"}, // no 31 February
		{erasure.GDPR, "2028-01-31T10:00:00Z", "2028-02-29T10:00:00Z"}, // leap year
		{erasure.GDPR, "2026-12-31T23:00:00Z", "2027-01-31T23:00:00Z"},
		{erasure.CCPA, "2026-03-15T10:00:00Z", "2026-04-29T10:00:00Z"},
	}
	for _, tc := range tests {
		if got := tc.j.DueDate(at(tc.received)); !got.Equal(at(tc.due)) {
			t.Errorf("%s due for %s = %s, want %s", tc.j, tc.received, got, tc.due)
		}
	}
	if got := erasure.GDPR.MaxExtension(at("2026-01-31T00:00:00Z")); !got.Equal(at("2026-03-31T00:00:00Z")) {
		t.Errorf("GDPR extension = %s", got)
	}
	for _, bad := range []string{"", "uk", "GDPR2"} {
		if _, err := erasure.ParseJurisdiction(bad); erasure.ErrorField(err) != "jurisdiction" {
			t.Errorf("ParseJurisdiction(%q) = %v", bad, err)
		}
	}
	if j, err := erasure.ParseJurisdiction(" CCPA "); err != nil || j != erasure.CCPA {
		t.Errorf("ParseJurisdiction(CCPA) = %v, %v", j, err)
	}
}

func TestTransitions(t *testing.T) {
	t.Parallel()
	if !erasure.RequestInProgress.CanTransition(erasure.RequestCompleted) {
		t.Error("in_progress → completed refused")
	}
	for _, final := range []erasure.RequestStatus{erasure.RequestCompleted, erasure.RequestCancelled, erasure.RequestDenied} {
		if !final.Final() || final.CanTransition(erasure.RequestInProgress) {
			t.Errorf("%s is not terminal", final)
		}
	}
	if erasure.TaskErased.CanTransition(erasure.TaskQueued) {
		t.Error("an erased task can be re-queued")
	}
	if !erasure.TaskDead.CanTransition(erasure.TaskQueued) {
		t.Error("a dead task cannot be retried")
	}
	tasks := func(ss ...erasure.TaskStatus) []erasure.Task {
		var out []erasure.Task
		for _, s := range ss {
			out = append(out, erasure.Task{Status: s})
		}
		return out
	}
	for _, tc := range []struct {
		tasks []erasure.Task
		want  erasure.RequestStatus
	}{
		{tasks(erasure.TaskErased, erasure.TaskNotFound), erasure.RequestCompleted},
		{tasks(erasure.TaskErased, erasure.TaskExempted), erasure.RequestCompletedWithExemptions},
		{tasks(erasure.TaskExempted, erasure.TaskRunning), erasure.RequestInProgress},
		{tasks(erasure.TaskErased, erasure.TaskFailed), erasure.RequestInProgress},
		{tasks(erasure.TaskQueued, erasure.TaskDead), erasure.RequestNeedsAttention},
		{tasks(erasure.TaskDead, erasure.TaskErased), erasure.RequestNeedsAttention},
	} {
		if got := erasure.Aggregate(tc.tasks); got != tc.want {
			t.Errorf("Aggregate(%v) = %s, want %s", tc.tasks, got, tc.want)
		}
	}
}

func TestEventChain(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	var events []erasure.Event
	var prev *erasure.Event
	for i := range 4 {
		e := erasure.NewEvent("r1", "", "step", "tester", "", map[string]int{"i": i}, at).Chain(prev)
		events = append(events, e)
		prev = &events[len(events)-1]
	}
	if err := erasure.VerifyChain(events); err != nil {
		t.Fatalf("fresh chain: %v", err)
	}
	for name, tamper := range map[string]func([]erasure.Event) []erasure.Event{
		"edited data":   func(e []erasure.Event) []erasure.Event { e[1].Data = []byte(`{"i":9}`); return e },
		"edited actor":  func(e []erasure.Event) []erasure.Event { e[2].Actor = "mallory"; return e },
		"moved in time": func(e []erasure.Event) []erasure.Event { e[0].At = e[0].At.Add(-time.Hour); return e },
		"dropped":       func(e []erasure.Event) []erasure.Event { return append(e[:1:1], e[2:]...) },
		"reordered":     func(e []erasure.Event) []erasure.Event { e[1], e[2] = e[2], e[1]; return e },
		"rehashed":      func(e []erasure.Event) []erasure.Event { e[1].Reason = "x"; e[1].Hash = e[1].ComputeHash(); return e },
	} {
		c := append([]erasure.Event(nil), events...)
		if err := erasure.VerifyChain(tamper(c)); err == nil {
			t.Errorf("%s: chain still verifies", name)
		}
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("wrapped: %w", erasure.Invalid("subject.email", "bad"))
	if erasure.ErrorCode(err) != erasure.EInvalid || erasure.ErrorField(err) != "subject.email" || erasure.ErrorMessage(err) != "bad" {
		t.Errorf("wrapped *Error lost: %v", err)
	}
	plain := errors.New("pq: password authentication failed for user x")
	if erasure.ErrorCode(plain) != erasure.EInternal || strings.Contains(erasure.ErrorMessage(plain), "password") {
		t.Error("a plain error leaks its text or is not internal")
	}
	if !erasure.ValidID(erasure.NewID()) || erasure.ValidID("1; DROP TABLE") || erasure.ValidID("") {
		t.Error("ValidID is wrong")
	}
}

func TestDeriveKey(t *testing.T) {
	a, _ := erasure.NewHasher(bytes.Repeat([]byte{1}, 32))
	b, _ := erasure.NewHasher(bytes.Repeat([]byte{2}, 32))
	k := a.DeriveKey("portal")
	if len(k) != 32 || !bytes.Equal(k, a.DeriveKey("portal")) {
		t.Fatalf("derived key %x is not stable 32 bytes", k)
	}
	if bytes.Equal(k, a.DeriveKey("other")) || bytes.Equal(k, b.DeriveKey("portal")) || bytes.Equal(k, bytes.Repeat([]byte{1}, 32)) {
		t.Error("derived keys collide across labels, keys or with the key itself")
	}
}

func TestKinds(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"email", "phone", "user_ids.app", "user_ids.shop-db", " user_ids.a_1 "} {
		if _, err := erasure.ParseKind(ok); err != nil {
			t.Errorf("ParseKind(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Email", "user_id:app", "user_ids.", "user_ids.App", "user_ids.a.b", "name", "user_ids.../x"} {
		if _, err := erasure.ParseKind(bad); erasure.ErrorCode(err) != erasure.EInvalid {
			t.Errorf("ParseKind(%q) = %v, want invalid", bad, err)
		}
	}
	s := erasure.Subject{Email: "a@example.com"}.With(erasure.UserIDKind("app"), "u-1").With(erasure.Phone, "+447700900123")
	if s.Get("user_ids.app") != "u-1" || !s.Has(erasure.Phone) || s.Has("user_ids.crm") {
		t.Fatalf("With/Get/Has: %+v", s)
	}
	base := erasure.Subject{UserIDs: map[string]string{"shop": "1"}}
	_ = base.With(erasure.UserIDKind("app"), "2")
	if len(base.UserIDs) != 1 {
		t.Error("With changed the subject it was called on")
	}
	if got := fmt.Sprint(s.Kinds()); got != "[email phone user_ids.app]" {
		t.Errorf("Kinds = %s", got)
	}
	r, err := erasure.ParseRequirement("user_ids.crm|email|email")
	if err != nil || r.String() != "user_ids.crm|email" {
		t.Fatalf("ParseRequirement = %v, %v", r, err)
	}
	if !r.MetBy(erasure.Subject{Email: "a@example.com"}) || r.MetBy(erasure.Subject{Phone: "+447700900123"}) {
		t.Error("MetBy")
	}
	if _, err := erasure.ParseRequirement("email|nope"); err == nil {
		t.Error("a requirement with a bad kind was accepted")
	}
	if v, err := erasure.NormalizeValue(erasure.Email, " A@Example.com"); err != nil || v != "a@example.com" {
		t.Errorf("NormalizeValue = %q, %v", v, err)
	}
	if _, err := erasure.NormalizeValue(erasure.Phone, "07700 900123"); err == nil {
		t.Error("a phone without a country code was accepted")
	}
}

func TestAggregatePhases(t *testing.T) {
	t.Parallel()
	task := func(phase string, st erasure.TaskStatus) erasure.Task { return erasure.Task{Phase: phase, Status: st} }
	tests := []struct {
		name  string
		tasks []erasure.Task
		want  erasure.RequestStatus
	}{
		{"resolvers done, no erasure yet", []erasure.Task{task(erasure.PhaseResolve, erasure.TaskResolved)}, erasure.RequestInProgress},
		{"resolver dead", []erasure.Task{task(erasure.PhaseResolve, erasure.TaskDead)}, erasure.RequestNeedsAttention},
		{"needs identifier", []erasure.Task{task(erasure.PhaseResolve, erasure.TaskResolved), task(erasure.PhaseErase, erasure.TaskErased), task(erasure.PhaseErase, erasure.TaskNeedsIdentifier)}, erasure.RequestNeedsAttention},
		{"waiting for another system", []erasure.Task{task(erasure.PhaseErase, erasure.TaskErased), task(erasure.PhaseErase, erasure.TaskWaiting)}, erasure.RequestInProgress},
		{"not applicable counts as done", []erasure.Task{task(erasure.PhaseResolve, erasure.TaskResolved), task(erasure.PhaseErase, erasure.TaskNotApplicable), task("", erasure.TaskNotFound)}, erasure.RequestCompleted},
		{"exempted", []erasure.Task{task(erasure.PhaseErase, erasure.TaskExempted), task(erasure.PhaseErase, erasure.TaskErased)}, erasure.RequestCompletedWithExemptions},
	}
	for _, tc := range tests {
		if got := erasure.Aggregate(tc.tasks); got != tc.want {
			t.Errorf("%s: Aggregate = %s, want %s", tc.name, got, tc.want)
		}
	}
	if erasure.TaskNeedsIdentifier.Done() || erasure.TaskWaiting.Done() || !erasure.TaskResolved.Done() || !erasure.TaskNotApplicable.Done() {
		t.Error("Done() is wrong for the new statuses")
	}
	if erasure.TaskErased.CanTransition(erasure.TaskQueued) || !erasure.TaskResolved.CanTransition(erasure.TaskQueued) {
		t.Error("a finished erasure may never run again; a resolver may look up again")
	}
}
