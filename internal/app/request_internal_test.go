package app

import (
	"bytes"
	"strings"
	"testing"
)

// TestPrintRequestCountsSystems: a resolver's look-up is not one of the
// systems erased, and a finished request shows no deadline running.
func TestPrintRequestCountsSystems(t *testing.T) {
	var b bytes.Buffer
	answer := `{"id":"r1","status":"completed","phase":"erase","received_at":"2026-12-01T10:00:00Z","due_at":"2027-01-01T10:00:00Z",
		"completed_at":"2026-12-01T10:05:00Z","tasks":[
		{"connector":"shop-db","phase":"resolve","status":"resolved"},
		{"connector":"shop-db","phase":"erase","status":"erased","records_erased":3},
		{"connector":"crm","phase":"erase","status":"not_found"}]}`
	if err := printRequest(&b, []byte(answer)); err != nil {
		t.Fatal(err)
	}
	out := strings.Join(strings.Fields(b.String()), " ")
	for _, want := range []string{"2 of 2 systems finished", "completed 2026-12-01 10:05 UTC"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "left)") || strings.Contains(out, "phase)") {
		t.Errorf("a finished request shows a running deadline or phase:\n%s", out)
	}
}

// TestPrintRequestSaysWhatGaveUp: a task that gave up reads as such, with
// its tries, not as "dead".
func TestPrintRequestSaysWhatGaveUp(t *testing.T) {
	var b bytes.Buffer
	answer := `{"id":"r1","status":"needs_attention","phase":"erase","received_at":"2026-12-01T10:00:00Z","due_at":"2027-01-01T10:00:00Z",
		"tasks":[{"connector":"crm","phase":"erase","status":"dead","attempts":8,"last_error":"401 bad credentials"},
		{"connector":"legacy","phase":"erase","status":"needs_identifier","attempts":0}]}`
	if err := printRequest(&b, []byte(answer)); err != nil {
		t.Fatal(err)
	}
	out := strings.Join(strings.Fields(b.String()), " ")
	for _, want := range []string{"gave up after 8 tries (a person must act)", "needs_identifier (a person must act)"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, " dead") {
		t.Errorf("says dead:\n%s", out)
	}
}
