// Package idtemplate reads the templates the filesystem and s3 connectors
// find a subject's files and objects by: text with {email}, {phone} and
// {user_id} placeholders, such as uploads/{email}/. Each connector keeps
// its own rules on what may stand around a placeholder.
package idtemplate

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lethe-dev/lethe/connectors"
)

// Placeholders are the identifiers a template may name, in the order a
// plan lists them.
var Placeholders = []string{"email", "phone", "user_id"}

// Part is either literal text or a placeholder name.
type Part struct{ Lit, Placeholder string }

// Parse splits text into literal parts and placeholders:
//
//	Parse("a/{email}.csv") // [{Lit: "a/"} {Placeholder: "email"} {Lit: ".csv"}]
//
// Its errors do not quote text; callers name the template.
func Parse(text string) ([]Part, error) {
	var parts []Part
	for text != "" {
		i := strings.IndexAny(text, "{}")
		if i < 0 {
			parts = append(parts, Part{Lit: text})
			break
		}
		if text[i] == '}' {
			return nil, errors.New(`stray "}"; braces are reserved for placeholders`)
		}
		if i > 0 {
			parts = append(parts, Part{Lit: text[:i]})
		}
		j := strings.IndexByte(text[i:], '}')
		if j < 0 {
			return nil, errors.New(`unclosed "{"`)
		}
		name := text[i+1 : i+j]
		if !slices.Contains(Placeholders, name) {
			return nil, fmt.Errorf("unknown placeholder {%s}; use {email}, {phone} or {user_id}", name)
		}
		parts = append(parts, Part{Placeholder: name})
		text = text[i+j+1:]
	}
	return parts, nil
}

// Keys is what a plan needs for templates made of parts: one requirement
// per placeholder they use, in Placeholders' order, {user_id} standing for
// user_ids.<system>. With one missing, what it names could not be found.
func Keys(parts []Part, system string) []connectors.Requirement {
	var reqs []connectors.Requirement
	for _, p := range Placeholders {
		if !slices.Contains(parts, Part{Placeholder: p}) {
			continue
		}
		k := connectors.Kind(p)
		if p == "user_id" {
			k = connectors.UserIDKind(system)
		}
		reqs = append(reqs, connectors.Requirement{k})
	}
	return reqs
}

// Values are s's identifiers by placeholder ("" where s has none), its
// user id read from user_ids.<system>.
func Values(s connectors.Subject, system string) map[string]string {
	return map[string]string{"email": s.Email, "phone": s.Phone, "user_id": s.UserIDs[system]}
}

// Skipped is the evidence for template text left out because the subject
// has no value for placeholder missing:
//
//	Skipped("path", "avatars/{user_id}.*", "user_id", "shop")
//	// path: avatars/{user_id}.*: skipped, the subject has no user_id for shop
func Skipped(kind, text, missing, system string) connectors.Evidence {
	why := "the subject has no " + missing
	if missing == "user_id" {
		why += " for " + system
	}
	return connectors.Evidence{Kind: kind, Value: text + ": skipped, " + why}
}
