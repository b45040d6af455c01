package app

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/coordinator"
	"github.com/lethe-dev/lethe/internal/erasure"
)

// instancePlans reads every configured instance's plan from its config
// (no connector is built, no secret revealed), with the instance entry's
// `keys:` in place of the type's default.
func instancePlans(cfg *config.Config) (map[string]connectors.Plan, error) {
	plans := map[string]connectors.Plan{}
	var errs []error
	for i, c := range cfg.Connectors {
		p, err := instancePlan(i, c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		plans[c.Name] = p
	}
	return plans, errors.Join(errs...)
}

// instancePlan is the plan of cfg.Connectors[i].
func instancePlan(i int, c config.Connector) (connectors.Plan, error) {
	def, ok := connectors.Lookup(c.Type)
	if !ok {
		return connectors.Plan{}, fmt.Errorf("config: connectors[%d].type: unknown type %q (known: %s)", i, c.Type, strings.Join(connectors.Types(), ", "))
	}
	p, err := def.Plan(c.Name, c.Decode)
	if err != nil {
		return connectors.Plan{}, fmt.Errorf("config: connectors[%d]: %w", i, err)
	}
	if len(c.Keys) > 0 {
		p.Keys = nil
		for _, k := range c.Keys {
			r, err := erasure.ParseRequirement(k)
			if err != nil {
				return connectors.Plan{}, fmt.Errorf("config: connectors[%d].keys: %w", i, err)
			}
			p.Keys = append(p.Keys, r)
		}
		p = p.Normalized()
	}
	var errs []error
	for j, k := range c.AuthorityFor {
		if !slices.Contains(p.Gives, erasure.Kind(k)) {
			errs = append(errs, fmt.Errorf("config: connectors[%d].authority_for[%d]: %s does not supply %s (it gives %s)", i, j, c.Name, k, kindsText(p.Gives)))
		}
	}
	return p, errors.Join(errs...)
}

// coordinatorConnectors is what the coordinator knows of each instance.
func coordinatorConnectors(cfg *config.Config, plans map[string]connectors.Plan) []coordinator.Connector {
	var out []coordinator.Connector
	for _, c := range cfg.Connectors {
		cn := coordinator.Connector{Name: c.Name, Type: c.Type, MaxAttempts: c.MaxAttempts, Plan: plans[c.Name],
			Optional: c.Optional, EraseAfter: c.EraseAfter, RecheckAfter: c.RecheckAfter}
		for _, k := range c.AuthorityFor {
			cn.AuthorityFor = append(cn.AuthorityFor, erasure.Kind(k))
		}
		out = append(out, cn)
	}
	return out
}

// kindSources is where each kind can come from: the request, and the
// resolvers that give it once something they look up by is known.
type kindSources struct {
	fromRequest []erasure.Kind
	// by lists, per kind, the resolvers that can supply it, each with
	// the kinds it would look the person up by.
	by map[erasure.Kind][]string
}

// resolutionGraph works out which kinds a request can end up with.
func resolutionGraph(cfg *config.Config, plans map[string]connectors.Plan) kindSources {
	g := kindSources{fromRequest: cfg.RequestKinds(), by: map[erasure.Kind][]string{}}
	have := map[erasure.Kind]bool{}
	for _, k := range g.fromRequest {
		have[k] = true
	}
	for changed := true; changed; {
		changed = false
		for _, c := range cfg.Connectors {
			p := plans[c.Name]
			if !p.Resolves() || !slices.ContainsFunc(p.ResolveBy, func(k erasure.Kind) bool { return have[k] }) {
				continue
			}
			for _, k := range p.Gives {
				desc := c.Name + " (by " + kindsText(p.ResolveBy) + ")"
				if !slices.Contains(g.by[k], desc) {
					g.by[k] = append(g.by[k], desc)
				}
				if !have[k] {
					have[k], changed = true, true
				}
			}
		}
	}
	return g
}

func (g kindSources) reachable(k erasure.Kind) bool {
	return slices.Contains(g.fromRequest, k) || len(g.by[k]) > 0
}

// checkResolution refuses a config in which an instance's keys can come
// from nowhere — neither the request nor any resolver — unless the
// instance is optional, and describes where every kind comes from and
// what every instance erases by to w.
func checkResolution(w io.Writer, cfg *config.Config, plans map[string]connectors.Plan) error {
	g := resolutionGraph(cfg, plans)
	kinds := slices.Clone(g.fromRequest)
	for k := range g.by {
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	var errs []error
	var lines []string
	for i, c := range cfg.Connectors {
		p := plans[c.Name]
		var keys []string
		for _, r := range p.Keys {
			keys = append(keys, strings.ReplaceAll(r.String(), "|", " or "))
			if slices.ContainsFunc(r, g.reachable) {
				continue
			}
			for _, k := range r {
				if !slices.Contains(kinds, k) {
					kinds = append(kinds, k)
				}
			}
			if c.Optional != "" {
				continue
			}
			errs = append(errs, fmt.Errorf("config: connectors[%d] (%s) erases by %s, which nothing supplies: "+
				"not the request (%s) and no resolver gives it. Add a resolver that does, list the kind in request_identifiers, "+
				"or mark the instance optional with a reason", i, c.Name, strings.ReplaceAll(r.String(), "|", " or "), kindsText(g.fromRequest)))
		}
		line := fmt.Sprintf("  %-20s ", c.Name)
		switch {
		case len(keys) == 0:
			line += "needs no identifier"
		default:
			line += "erases by " + strings.Join(keys, " and ")
		}
		if extra := without(p.Uses, p.Keys); len(extra) > 0 {
			line += " (also " + kindsText(extra) + " when known)"
		}
		if len(c.EraseAfter) > 0 {
			line += ", after " + strings.Join(c.EraseAfter, ", ")
		}
		if c.Optional != "" {
			line += "; optional: " + c.Optional
		}
		lines = append(lines, line)
	}
	erasure.SortKinds(kinds)
	fmt.Fprintln(w, "identifiers:")
	for _, k := range kinds {
		var from []string
		if slices.Contains(g.fromRequest, k) {
			from = append(from, "the request")
		}
		from = append(from, g.by[k]...)
		if len(from) == 0 {
			from = []string{"NOTHING SUPPLIES IT"}
		}
		fmt.Fprintf(w, "  %-20s from %s\n", k, strings.Join(from, ", "))
	}
	fmt.Fprintln(w, "systems:")
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	return errors.Join(errs...)
}

// without lists the kinds of uses that no requirement names.
func without(uses []erasure.Kind, keys []erasure.Requirement) []erasure.Kind {
	var out []erasure.Kind
	for _, k := range uses {
		if !slices.ContainsFunc(keys, func(r erasure.Requirement) bool { return slices.Contains(r, k) }) {
			out = append(out, k)
		}
	}
	return out
}

func kindsText(ks []erasure.Kind) string {
	if len(ks) == 0 {
		return "none"
	}
	parts := make([]string, len(ks))
	for i, k := range ks {
		parts[i] = string(k)
	}
	return strings.Join(parts, ", ")
}
