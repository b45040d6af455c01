// Package external is the connector type for connectors that run in their
// own process, in any language, speaking only the NATS message contract
// (docs/messages.md): Lethe creates and tracks their tasks, and runs no
// worker for them. See example/ for a complete one in a few dozen lines.
package external

import (
	"context"
	"errors"
	"fmt"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/erasure"
)

func init() {
	connectors.Register("external", "A connector running in its own process, on the NATS contract", connectors.Limits{Concurrency: 4},
		func(context.Context, string, Config, connectors.Deps) (connectors.Connector, error) {
			return outside{}, nil
		})
}

// Config says what the outside process works with; the rest of its
// configuration is its own. Concurrency in the instance entry still sets
// how many tasks JetStream hands out at once; what it erases by is the
// instance entry's `keys:` (default email).
//
//	uses: [email, user_ids.legacy]   # searched by these when the request has them
//	resolve_by: [email]              # it answers resolve tasks (docs/messages.md) …
//	gives: [user_ids.legacy]         # … with identifiers of these kinds
type Config struct {
	Uses      []string `yaml:"uses"`
	ResolveBy []string `yaml:"resolve_by"`
	Gives     []string `yaml:"gives"`
}

// Validate checks the kinds.
func (c *Config) Validate() error {
	var errs []error
	for key, list := range map[string][]string{"uses": c.Uses, "resolve_by": c.ResolveBy, "gives": c.Gives} {
		for i, k := range list {
			if _, err := erasure.ParseKind(k); err != nil {
				errs = append(errs, fmt.Errorf("%s[%d]: %w", key, i, err))
			}
		}
	}
	if (len(c.ResolveBy) == 0) != (len(c.Gives) == 0) {
		errs = append(errs, errors.New("resolve_by and gives: give both (the process answers resolve tasks) or neither"))
	}
	return errors.Join(errs...)
}

// Plan implements connectors.Planner.
func (c Config) Plan(string) connectors.Plan {
	p := connectors.EmailPlan()
	kinds := func(list []string) []connectors.Kind {
		out := make([]connectors.Kind, len(list))
		for i, k := range list {
			out[i] = connectors.Kind(k)
		}
		return out
	}
	p.Uses = append(p.Uses, kinds(c.Uses)...)
	p.ResolveBy, p.Gives = kinds(c.ResolveBy), kinds(c.Gives)
	return p
}

type outside struct{}

// RunsOutside tells the worker runtime to leave this instance alone.
func (outside) RunsOutside() {}

func (outside) Erase(context.Context, connectors.Subject) (connectors.Outcome, error) {
	return connectors.Outcome{}, connectors.Permanent(errors.New("this connector runs in its own process; Lethe's workers do not run it"))
}
