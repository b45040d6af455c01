// Package external is the connector type for connectors that run in their
// own process, in any language, speaking only the NATS message contract
// (docs/messages.md): Lethe creates and tracks their tasks, and runs no
// worker for them. See example/ for a complete one in a few dozen lines.
package external

import (
	"context"
	"errors"

	"github.com/lethe-dev/lethe/connectors"
)

func init() {
	connectors.Register("external", "A connector running in its own process, on the NATS contract", connectors.Limits{Concurrency: 4},
		func(context.Context, string, Config, connectors.Deps) (connectors.Connector, error) {
			return outside{}, nil
		})
}

// Config is empty: the process that serves the connector has its own.
// Concurrency in the instance entry still sets how many tasks JetStream
// hands out at once.
type Config struct{}

type outside struct{}

// RunsOutside tells the worker runtime to leave this instance alone.
func (outside) RunsOutside() {}

func (outside) Erase(context.Context, connectors.Subject) (connectors.Outcome, error) {
	return connectors.Outcome{}, connectors.Permanent(errors.New("this connector runs in its own process; Lethe's workers do not run it"))
}
