package connectors

import (
	"context"
	"fmt"
	"slices"

	"github.com/lethe-dev/lethe/internal/erasure"
)

// Kind is a kind of identifier: "email", "phone" or "user_ids.<namespace>".
type Kind = erasure.Kind

// Requirement is satisfied by an identifier of any one of its kinds.
type Requirement = erasure.Requirement

// Kinds of identifier a plan names most often.
const (
	Email = erasure.Email
	Phone = erasure.Phone
)

// UserIDKind is the kind of the ids in namespace ns: "user_ids.<ns>".
func UserIDKind(ns string) Kind { return erasure.UserIDKind(ns) }

// ParseKind validates a kind written in config.
func ParseKind(s string) (Kind, error) { return erasure.ParseKind(s) }

// Plan says which identifiers a connector instance works with. Lethe reads
// it from the instance's config alone, without building the connector or
// reading its credentials (API processes run no connectors), to decide
// when the instance can be searched and what it can find out.
//
// A connector type provides it with a method on its config type:
//
//	func (c Config) Plan(name string) connectors.Plan {
//		return connectors.Plan{Keys: []connectors.Requirement{{connectors.UserIDKind(c.system(name))}}}
//	}
//
// Without one, an instance erases by email. The instance entry in Lethe's
// config may replace Keys (`keys:`).
type Plan struct {
	// Keys are what the system erases by: it is searched only when the
	// request meets every requirement; until then its task waits as
	// needs_identifier. Empty: it needs no identifier (a person does it).
	Keys []Requirement
	// Uses lists every kind the system is searched by when the request
	// has it, Keys' kinds included (they are added if missing).
	Uses []Kind
	// ResolveBy and Gives make the instance a resolver: given an
	// identifier of a kind in ResolveBy it looks the person up and returns
	// identifiers of the kinds in Gives. Its connector implements
	// Resolver.
	ResolveBy []Kind
	Gives     []Kind
}

// Resolves reports whether the instance looks people up.
func (p Plan) Resolves() bool { return len(p.Gives) > 0 }

// Normalized returns p with every key kind in Uses, each list without
// duplicates and in kind order.
func (p Plan) Normalized() Plan {
	uses := slices.Clone(p.Uses)
	for _, r := range p.Keys {
		uses = append(uses, r...)
	}
	p.Uses = uniqueKinds(uses)
	p.ResolveBy = uniqueKinds(p.ResolveBy)
	p.Gives = uniqueKinds(p.Gives)
	return p
}

func uniqueKinds(ks []Kind) []Kind {
	out := make([]Kind, 0, len(ks))
	for _, k := range ks {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	erasure.SortKinds(out)
	return out
}

// Check reports a plan that names a malformed kind.
func (p Plan) Check() error {
	for _, list := range [][]Kind{p.Uses, p.ResolveBy, p.Gives} {
		for _, k := range list {
			if _, err := erasure.ParseKind(string(k)); err != nil {
				return err
			}
		}
	}
	for _, r := range p.Keys {
		if len(r) == 0 {
			return fmt.Errorf("plan: an empty requirement can never be met")
		}
		for _, k := range r {
			if _, err := erasure.ParseKind(string(k)); err != nil {
				return err
			}
		}
	}
	if p.Resolves() && len(p.ResolveBy) == 0 {
		return fmt.Errorf("plan: a resolver must say what it looks people up by")
	}
	return nil
}

// Met reports whether s has what the plan's keys require.
func (p Plan) Met(s Subject) bool {
	for _, r := range p.Keys {
		if !r.MetBy(s) {
			return false
		}
	}
	return true
}

// Missing lists the requirements s does not meet.
func (p Plan) Missing(s Subject) []Requirement {
	var out []Requirement
	for _, r := range p.Keys {
		if !r.MetBy(s) {
			out = append(out, r)
		}
	}
	return out
}

// SearchedBy lists the kinds in Uses that s has: what the system is
// searched by for s.
func (p Plan) SearchedBy(s Subject) []Kind { return had(p.Uses, s) }

// LooksUpBy lists the kinds in ResolveBy that s has.
func (p Plan) LooksUpBy(s Subject) []Kind { return had(p.ResolveBy, s) }

// had lists the kinds of ks that s has.
func had(ks []Kind, s Subject) []Kind {
	var out []Kind
	for _, k := range ks {
		if s.Has(k) {
			out = append(out, k)
		}
	}
	return out
}

// EmailPlan is the plan of a connector that erases by email only: the
// default for types whose config has no Plan method.
func EmailPlan() Plan { return Plan{Keys: []Requirement{{Email}}, Uses: []Kind{Email}} }

// EmailResolvesPlan is the plan of a vendor that finds a person by their
// email, by any of others, or by its own id, any one enough, and that
// tells the id of the person an email finds: a resolver of id by email
// (Stripe's customers, Intercom's contacts, Klaviyo's profiles with a
// phone as other).
func EmailResolvesPlan(id Kind, others ...Kind) Plan {
	kinds := append(append([]Kind{Email}, others...), id)
	return Plan{Keys: []Requirement{kinds}, Uses: kinds, ResolveBy: []Kind{Email}, Gives: []Kind{id}}
}

// Planner is implemented by connector config types (see Plan).
type Planner interface {
	Plan(name string) Plan
}

// Resolver is implemented by connectors that can look a person up and
// supply further identifiers (a CRM's record id, the app user id a shop
// database keeps beside the email). Lethe runs every resolver before any
// erasure, again whenever an identifier it looks up by turns up, and
// erases everywhere by what they found.
type Resolver interface {
	// Resolve looks s up by the kinds in the plan's ResolveBy and returns
	// what it found of the kinds in Gives. Finding nothing is not an
	// error; a system that cannot be reached is (the look-up is retried,
	// never skipped). The values are personal data: never log them.
	Resolve(ctx context.Context, s Subject) (Resolution, error)
}

// Resolution is what a resolver found.
type Resolution struct {
	// Found holds the values found by kind. Several values of one kind
	// (two customer records for one email) are reported as found; Lethe
	// does not pick one.
	Found map[Kind][]string
	// Evidence: what was looked up, with counts. No personal data.
	Evidence []Evidence
}

// Add records value v of kind k (empty values and repeats are ignored).
//
//	var r connectors.Resolution
//	r.Add(connectors.UserIDKind("app"), row.AppUserID)
func (r *Resolution) Add(k Kind, v string) {
	if v == "" {
		return
	}
	if r.Found == nil {
		r.Found = map[Kind][]string{}
	}
	if !slices.Contains(r.Found[k], v) {
		r.Found[k] = append(r.Found[k], v)
	}
}

// Values lists every value found, for redacting them out of text.
func (r Resolution) Values() []string {
	var out []string
	for _, vs := range r.Found {
		out = append(out, vs...)
	}
	return out
}
