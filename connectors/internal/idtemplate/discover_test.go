package idtemplate

import (
	"fmt"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
)

func TestShape(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"uploads/ann@example.com/photo.jpg":   "uploads/{email}/",
		"exports/ann@example.com.csv":         "exports/{email}.csv",
		"invoices/2026/ann@example.com-3.pdf": "invoices/*/{email}-*.pdf",
		"calls/+4930123456.wav":               "calls/{phone}.wav",
		"products/mug-2.jpg":                  "",
		"logs/2026-01-02.log":                 "",
	} {
		got, ok := Shape(in)
		if got != want || ok != (want != "") {
			t.Errorf("Shape(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestFindings(t *testing.T) {
	t.Parallel()
	var paths []string
	for i := range 3 {
		paths = append(paths, fmt.Sprintf("uploads/p%d@example.com/a.jpg", i), fmt.Sprintf("exports/p%d@example.com.csv", i),
			fmt.Sprintf("tickets/p%d@example.com.txt", i), fmt.Sprintf("legal/holds/p%d@example.com.pdf", i))
	}
	paths = append(paths, "products/mug.jpg")
	covered := func(p string) bool {
		return strings.HasPrefix(p, "uploads/") || (strings.HasPrefix(p, "exports/") && !strings.Contains(p, "p2@"))
	}
	got := map[string]connectors.Finding{}
	for _, f := range Findings(paths, covered, []connectors.Ignore{{Place: "legal/", Reason: "litigation hold"}}) {
		got[f.Place] = f
		if strings.Contains(f.Place+f.Reason, "example.com") {
			t.Errorf("a finding names an identifier: %+v", f)
		}
	}
	for place, want := range map[string]string{
		"uploads/{email}/":        "covered: a path template names them",
		"exports/{email}.csv":     "uncovered: no path template names 1 of them",
		"tickets/{email}.txt":     "uncovered: no path template names them",
		"legal/holds/{email}.pdf": "ignored: ignored: litigation hold",
	} {
		f, ok := got[place]
		if !ok || string(f.Status)+": "+f.Reason != want || f.Sampled != 3 {
			t.Errorf("%s: %+v, want %s (3 paths)", place, f, want)
		}
	}
	if len(got) != 4 {
		t.Errorf("%d findings, want 4: %v", len(got), got)
	}
}
