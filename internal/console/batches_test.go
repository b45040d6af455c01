package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/coordinator"
	"github.com/lethe-dev/lethe/internal/erasure"
)

// TestBatches: the batches page lists each batch with its progress, the
// list filtered by a batch shows only its requests with the batch's
// progress above them, a request names its batch, and a batch never
// filed or a name no batch may have is refused saying why.
func TestBatches(t *testing.T) {
	e := setup(t)
	fileIn := func(batch, email string) erasure.Request {
		t.Helper()
		e.addSecret(email)
		req, _, err := e.coord.File(context.Background(), coordinator.FileInput{Subject: erasure.Subject{Email: email},
			Jurisdiction: "gdpr", Source: "batch", Actor: "api:test", Batch: batch})
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	var closed []erasure.Request
	for _, email := range []string{"closed.a@example.com", "closed.b@example.com", "closed.c@example.com"} {
		closed = append(closed, fileIn("closed-accounts-2026", email))
	}
	other := fileIn("shutdown-app", "app.user@example.com")
	alone := e.file("alone@example.com", "")
	// One person of the batch is erased everywhere: their request is
	// over, and 3 of the batch's 9 systems (3 a request) are done.
	for _, task := range e.tasks(closed[0].ID) {
		e.result(task, bus.ResultErased, false)
	}

	b := e.browser()
	b.login("cyd", auditorPW)
	w := b.get("/console/batches")
	if w.status != http.StatusOK {
		t.Fatalf("batches page = %d", w.status)
	}
	for _, want := range []string{
		`href="/console?batch=closed-accounts-2026"`, `href="/console?batch=shutdown-app"`,
		`<progress max="3" value="1"`, "1 of 3 requests", "3 of 9",
	} {
		if !strings.Contains(w.body, want) {
			t.Errorf("the batches page does not show %q", want)
		}
	}
	if strings.Index(w.body, "shutdown-app") > strings.Index(w.body, "closed-accounts-2026") {
		t.Error("the batches are not newest first")
	}
	if strings.Contains(w.body, "@example.com") {
		t.Error("the batches page shows an email address")
	}

	w = b.get("/console?batch=closed-accounts-2026")
	sameIDs(t, "the batch's requests", ids(w.body), closed[2], closed[1], closed[0])
	for _, want := range []string{"Batch closed-accounts-2026", "Progress of the batch", "1 of 3 requests (33%)", "3 of 9 (33%)",
		"in progress: 2", "completed: 1", `name="batch" type="checkbox" value="closed-accounts-2026" checked`} {
		if !strings.Contains(w.body, want) {
			t.Errorf("the batch's list does not show %q", want)
		}
	}
	if w = b.get("/console?batch=closed-accounts-2026&status=completed"); len(ids(w.body)) != 1 {
		t.Errorf("the batch filtered by status lists %d requests, want 1", len(ids(w.body)))
	}
	if w = b.get("/console/requests/" + other.ID); !strings.Contains(w.body, `<a href="/console?batch=shutdown-app"><code>shutdown-app</code></a>`) {
		t.Error("the request page does not name its batch")
	}
	if w = b.get("/console/requests/" + alone.ID); strings.Contains(w.body, "<dt>Batch</dt>") {
		t.Error("a request filed alone names a batch")
	}
	if w = b.get("/console?batch=never-filed"); w.status != http.StatusNotFound || !strings.Contains(w.body, "No request was filed in batch never-filed") {
		t.Errorf("a batch never filed = %d\n%s", w.status, w.body)
	}
	if w = b.get("/console?batch=ada%40example.com"); w.status != http.StatusBadRequest || !strings.Contains(w.body, "name a batch") {
		t.Errorf("a name no batch may have = %d", w.status)
	}
}
