// Package manual is the connector for what only a person can erase: paper
// archives, a system with no API, a vendor reached by email. Its task waits
// as running until staff complete it with evidence
// (POST /v1/requests/{id}/tasks/{connector}/complete), which records who
// did it, when, and what they attached.
package manual

import (
	"context"
	"errors"
	"time"

	"github.com/lethe-dev/lethe/connectors"
)

func init() {
	connectors.Register("manual", "A task a person completes by hand, with evidence", connectors.Limits{Concurrency: 8},
		func(_ context.Context, _ string, cfg Config, _ connectors.Deps) (connectors.Connector, error) {
			if cfg.CheckEvery == 0 {
				cfg.CheckEvery = 24 * time.Hour
			}
			return &manual{cfg: cfg}, nil
		})
}

// Config is the manual connector's configuration:
//
//	instructions: Shred the paper file in the Leeds archive and note the box number.
type Config struct {
	// Instructions tell staff what to do; they appear on the task.
	Instructions string `yaml:"instructions"`
	// CheckEvery is how often the waiting task is looked at again
	// (default 24h); it only keeps the task visible as running.
	CheckEvery time.Duration `yaml:"check_every"`
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.Instructions == "" {
		return errors.New("instructions: required: tell staff what to erase and what evidence to attach")
	}
	if c.CheckEvery < 0 {
		return errors.New("check_every: must not be negative")
	}
	return nil
}

// Plan: a person erases, so the task needs no identifier and never waits
// for one; the email and phone, when the request has them, are what staff
// search by (they see the request's identifiers on the task).
func (c Config) Plan(string) connectors.Plan {
	return connectors.Plan{Uses: []connectors.Kind{connectors.Email, connectors.Phone}}
}

type manual struct{ cfg Config }

// jobRef marks a task waiting for a person.
const jobRef = "awaiting-person"

// Erase starts the wait for a person.
func (m *manual) Erase(ctx context.Context, _ connectors.Subject) (connectors.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return connectors.Outcome{}, err
	}
	return connectors.Running(jobRef, m.cfg.CheckEvery, connectors.Evidence{Kind: "instructions", Value: m.cfg.Instructions}), nil
}

// Poll keeps waiting: only a person completes the task.
func (m *manual) Poll(ctx context.Context, ref string) (connectors.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return connectors.Outcome{}, err
	}
	return connectors.Running(ref, m.cfg.CheckEvery), nil
}
