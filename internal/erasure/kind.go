package erasure

import (
	"slices"
	"sort"
	"strings"
)

// Kind names one kind of identifier as config, the API and certificates
// write it: "email", "phone", or "user_ids.<namespace>" for an id some
// system issued ("user_ids.customer", "user_ids.app"). The namespace is
// the key of Subject.UserIDs.
type Kind string

// Kinds that are not user ids.
const (
	Email Kind = KindEmail
	Phone Kind = KindPhone
)

const userIDsPrefix = "user_ids."

// UserIDKind is the kind of the ids in namespace ns.
//
//	erasure.UserIDKind("app") // "user_ids.app"
func UserIDKind(ns string) Kind { return Kind(userIDsPrefix + ns) }

// Namespace returns the user id namespace of k, or "" when k is not a
// user id kind.
func (k Kind) Namespace() string {
	ns, ok := strings.CutPrefix(string(k), userIDsPrefix)
	if !ok {
		return ""
	}
	return ns
}

// ParseKind validates a kind written as text.
func ParseKind(s string) (Kind, error) {
	k := Kind(strings.TrimSpace(s))
	switch {
	case k == Email, k == Phone:
		return k, nil
	case strings.HasPrefix(string(k), userIDsPrefix) && systemNameRe.MatchString(k.Namespace()):
		return k, nil
	}
	return "", Errorf(EInvalid, "%q is not an identifier kind: use email, phone or user_ids.<name> (lower-case letters, digits, '-' or '_')", s)
}

// hashKind is the kind as the keyed hash has always been computed over:
// "user_id:<namespace>" for user ids, so hashes made before kinds were
// written "user_ids.<namespace>" still match.
func hashKind(kind string) string {
	if ns := Kind(kind).Namespace(); ns != "" {
		return KindUserID + ":" + ns
	}
	return kind
}

// Get returns s's identifier of kind k, or "".
func (s Subject) Get(k Kind) string {
	switch k {
	case Email:
		return s.Email
	case Phone:
		return s.Phone
	}
	if ns := k.Namespace(); ns != "" {
		return s.UserIDs[ns]
	}
	return ""
}

// Has reports whether s has an identifier of kind k.
func (s Subject) Has(k Kind) bool { return s.Get(k) != "" }

// With returns a copy of s with the identifier of kind k set to v.
func (s Subject) With(k Kind, v string) Subject {
	switch k {
	case Email:
		s.Email = v
	case Phone:
		s.Phone = v
	default:
		ids := make(map[string]string, len(s.UserIDs)+1)
		for ns, id := range s.UserIDs {
			ids[ns] = id
		}
		ids[k.Namespace()] = v
		s.UserIDs = ids
	}
	return s
}

// Kinds lists the kinds s has, in the order of Identifiers.
func (s Subject) Kinds() []Kind {
	ids := s.Identifiers()
	out := make([]Kind, len(ids))
	for i, id := range ids {
		out[i] = Kind(id.Kind)
	}
	return out
}

// NormalizeValue validates one identifier of kind k and returns it in
// canonical form, as Subject.Normalize would.
func NormalizeValue(k Kind, v string) (string, error) {
	n, err := Subject{}.With(k, v).Normalize()
	if err != nil {
		return "", err
	}
	return n.Get(k), nil
}

// Requirement is what a system needs before it can be searched: one
// identifier of any of these kinds. Written "email|user_ids.crm" in config.
type Requirement []Kind

// ParseRequirement reads "kind" or "kind|kind|…".
func ParseRequirement(s string) (Requirement, error) {
	var r Requirement
	for _, part := range strings.Split(s, "|") {
		k, err := ParseKind(part)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(r, k) {
			r = append(r, k)
		}
	}
	return r, nil
}

func (r Requirement) String() string {
	parts := make([]string, len(r))
	for i, k := range r {
		parts[i] = string(k)
	}
	return strings.Join(parts, "|")
}

// MetBy reports whether s has an identifier of one of r's kinds.
func (r Requirement) MetBy(s Subject) bool {
	return slices.ContainsFunc(r, s.Has)
}

// SortKinds sorts kinds as Identifiers orders them: email, phone, then
// user ids by namespace.
func SortKinds(ks []Kind) {
	rank := func(k Kind) int {
		switch k {
		case Email:
			return 0
		case Phone:
			return 1
		}
		return 2
	}
	sort.SliceStable(ks, func(i, j int) bool {
		if ri, rj := rank(ks[i]), rank(ks[j]); ri != rj {
			return ri < rj
		}
		return ks[i] < ks[j]
	})
}

// Source says where the request got an identifier of some kind: the
// request itself, a connector instance that resolved it, or a member of
// staff who added it. It names kinds and systems, never values.
type Source struct {
	Kind Kind   `json:"kind"`
	From string `json:"from"` // SourceRequest, a connector instance name, or "staff:<name>"
}

// SourceRequest is the From of identifiers the request was filed with.
const SourceRequest = "request"

// Sources maps each kind a request has to where it came from.
type Sources map[Kind]string

// List returns the sources in kind order.
func (s Sources) List() []Source {
	ks := make([]Kind, 0, len(s))
	for k := range s {
		ks = append(ks, k)
	}
	SortKinds(ks)
	out := make([]Source, len(ks))
	for i, k := range ks {
		out[i] = Source{Kind: k, From: s[k]}
	}
	return out
}
