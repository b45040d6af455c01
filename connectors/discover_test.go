package connectors

import (
	"strings"
	"testing"
)

func TestValidateIgnores(t *testing.T) {
	t.Parallel()
	if err := ValidateIgnores([]Ignore{{Place: "orders.note", Reason: "tax law"}, {Place: "audit", Reason: "legal hold"}}); err != nil {
		t.Fatalf("good entries refused: %v", err)
	}
	err := ValidateIgnores([]Ignore{{Place: " ", Reason: "x"}, {Place: "a.b"}, {Place: "A.B", Reason: "y"}})
	if err == nil {
		t.Fatal("bad entries accepted")
	}
	for _, want := range []string{"ignore[0].place: required", "ignore[1].reason: required", `ignore[2].place: "A.B" is ignored twice`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestIgnoreFor(t *testing.T) {
	t.Parallel()
	list := []Ignore{{Place: "orders", Reason: "r1"}, {Place: "customers.Notes", Reason: "r2"}}
	for place, want := range map[string]string{"orders.note": "r1", "ORDERS": "r1", "customers.notes": "r2", "ordersx.note": "", "customers.email": "", "order": ""} {
		ig, ok := IgnoreFor(list, place)
		if ok != (want != "") || ig.Reason != want {
			t.Errorf("IgnoreFor(%q) = %q, %v; want %q", place, ig.Reason, ok, want)
		}
	}
}

func TestCoverageSortAndCount(t *testing.T) {
	t.Parallel()
	c := Coverage{Findings: []Finding{
		{Place: "b", Status: Covered}, {Place: "z", Status: Uncovered}, {Place: "a", Status: Ignored}, {Place: "c", Status: Uncovered},
	}}
	c.Sort()
	var got []string
	for _, f := range c.Findings {
		got = append(got, f.Place)
	}
	if strings.Join(got, ",") != "c,z,a,b" {
		t.Errorf("sorted %v, want uncovered (c,z), ignored (a), covered (b)", got)
	}
	if c.Count(Uncovered) != 2 || c.Count(Covered) != 1 || c.Count(Ignored) != 1 {
		t.Errorf("counts %d/%d/%d", c.Count(Uncovered), c.Count(Covered), c.Count(Ignored))
	}
}
