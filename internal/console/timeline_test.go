package console_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/erasure"
)

// TestTimelineInWords: each event reads as a sentence with its time to the
// second, evidence is shown in full however long, a task that gave up says
// after how many tries, and a manual task's instructions are shown as what
// staff must do while it waits, never as evidence once it is done.
func TestTimelineInWords(t *testing.T) {
	e := setup(t)
	b := e.browser()
	b.login("bob", agentPW)
	req := e.file("person@example.com", "")
	ts := e.tasks(req.ID)

	e.result(ts["shop-db"], bus.ResultFailed, true) // gives up at once
	long := strings.Repeat("row 42 of table orders erased; ", 20) + "end of evidence"
	e.apply(bus.Result{V: 1, Kind: bus.KindErase, TaskID: ts["crm"].ID, RequestID: req.ID, Connector: "crm",
		Attempt: ts["crm"].Attempt, Status: bus.ResultErased, Records: 3, SearchedBy: []erasure.Kind{"email"},
		Evidence: []erasure.Evidence{{Kind: "log", Value: long}}})
	e.apply(bus.Result{V: 1, Kind: bus.KindErase, TaskID: ts["paper"].ID, RequestID: req.ID, Connector: "paper",
		Attempt: ts["paper"].Attempt, Status: bus.ResultRunning, JobRef: "awaiting-person",
		Evidence: []erasure.Evidence{{Kind: "instructions", Value: "Shred the paper file in cabinet B."}}})

	p := b.get("/console/requests/" + req.ID)
	for _, want := range []string{
		"2026-06-01 09:00:00 UTC",                           // full times
		"gave up after 1 try; a person must act",            // the task table
		"shop-db gave up after 1 try: 401 bad credentials.", // the timeline
		"crm erased 3 records, searched by email.",
		long, // in full, not cut
		"waiting for a person",
		"Instructions: Shred the paper file in cabinet B.",
		"paper waits for a person to do it by hand.",
		"The request went from received to in progress.",
		"Erasure of crm was planned.",
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the request page lacks %q", want)
		}
	}
	for _, bad := range []string{"…", ">dead<", "instructions: Shred"} {
		if strings.Contains(p.body, bad) {
			t.Errorf("the request page shows %q", bad)
		}
	}

	done(t, b, b.act(req.ID, "complete", url.Values{"connector": {"paper"}, "outcome": {"erased"}, "records": {"1"},
		"evidence": {"ticket: T-9"}, "reason": {"Shredded it."}}), req.ID, "complete", "done by hand")
	p = b.get("/console/requests/" + req.ID)
	if !strings.Contains(p.body, "Staff recorded paper as erased by hand: 1 record.") {
		t.Error("the timeline does not say the manual task was completed by hand")
	}
	row := taskRow(t, p.body, "paper")
	for _, bad := range []string{"awaiting-person", "Shred the paper file", "waiting for a person"} {
		if strings.Contains(row, bad) {
			t.Errorf("the completed manual task still shows %q: %s", bad, row)
		}
	}
	if !strings.Contains(row, "erased") || !strings.Contains(row, "ticket: T-9") {
		t.Errorf("the completed manual task does not read erased with its evidence: %s", row)
	}
}

// apply applies a connector's result as the coordinator receives it.
func (e *env) apply(r bus.Result) {
	e.t.Helper()
	if _, err := e.coord.ApplyResult(context.Background(), r); err != nil {
		e.t.Fatal(err)
	}
}

// taskRow is the row of the task table for a connector instance.
func taskRow(t *testing.T, body, connector string) string {
	t.Helper()
	i := strings.Index(body, `<th scope="row">`+connector+` <span class="hint">`)
	if i < 0 {
		t.Fatalf("no task row for %s", connector)
	}
	end := strings.Index(body[i:], "</tr>")
	return body[i : i+end]
}
