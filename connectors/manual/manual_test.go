package manual_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	_ "github.com/lethe-dev/lethe/connectors/manual"
)

const cfg = "instructions: Shred the paper file in the Leeds archive.\n"

func TestPlan(t *testing.T) {
	t.Parallel()
	p, err := connectortest.TryPlan("manual", "paper-archive", cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A person does it: no identifier is required, so the task never waits
	// as needs_identifier; staff search by email and phone.
	if len(p.Keys) != 0 || fmt.Sprint(p.Uses) != "[email phone]" || p.Resolves() {
		t.Errorf("plan = keys %v uses %v resolves %v; want no keys, uses [email phone]", p.Keys, p.Uses, p.Resolves())
	}
	if !p.Met(connectors.Subject{UserIDs: map[string]string{"crm": "7"}}) {
		t.Error("a request with neither email nor phone does not meet the plan")
	}
}

func TestEraseWaitsForAPerson(t *testing.T) {
	t.Parallel()
	c := connectortest.Build(t, "manual", "paper-archive", cfg)
	out, err := c.Erase(context.Background(), connectors.Subject{Email: "ann@example.com"})
	if err != nil || out.Status != connectors.StatusRunning || out.JobRef == "" {
		t.Fatalf("Erase = %+v, %v; want running until a person completes it", out, err)
	}
	if len(out.Evidence) != 1 || !strings.Contains(out.Evidence[0].Value, "Leeds") {
		t.Errorf("evidence = %v; want the instructions", out.Evidence)
	}
	again, err := c.(connectors.Poller).Poll(context.Background(), out.JobRef)
	if err != nil || again.Status != connectors.StatusRunning {
		t.Errorf("Poll = %+v, %v; want still running", again, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Erase(ctx, connectors.Subject{Email: "ann@example.com"}); err == nil {
		t.Error("Erase with a cancelled context succeeded")
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, yaml, want string }{
		{"no instructions", "check_every: 1h\n", "instructions: required"},
		{"negative check", cfg + "check_every: -1h\n", "check_every: must not be negative"},
		{"unknown key", cfg + "assignee: bob\n", "assignee"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := connectortest.TryBuild("manual", "paper-archive", tc.yaml); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
