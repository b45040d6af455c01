package app

import (
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/config"
)

// TestExampleConfigResolves: the documented example's systems can all be
// searched: every key comes from the request or a resolver.
func TestExampleConfigResolves(t *testing.T) {
	cfg, err := config.Load("../../config/lethe.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	plans, err := instancePlans(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := checkResolution(&out, cfg, plans); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"user_ids.app         from shop-db (by email)", "app-analytics        erases by user_ids.app, after shop-db",
		"shop-db              erases by email (also phone when known)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("resolution graph lacks %q:\n%s", want, out.String())
		}
	}
}
