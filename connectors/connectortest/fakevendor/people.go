package fakevendor

import (
	"strings"
	"sync"

	"github.com/lethe-dev/lethe/connectors"
)

// People are the persons a fake holds, each an email (matched without
// regard to case) and a user id, either possibly empty. A fake keeps its
// vendor's own record shape beside them where it has one.
//
//	f.people.Add(s.Email, s.UserIDs[connectortest.UserIDSystem])
//	gone := f.people.Remove(body.Email, "")
type People struct {
	mu   sync.Mutex
	list []Person
}

// Person is one record of People.
type Person struct{ Email, UserID string }

// matches reports whether p has email or userID (an empty one matches nothing).
func (p Person) matches(email, userID string) bool {
	return (email != "" && strings.EqualFold(p.Email, email)) || (userID != "" && p.UserID == userID)
}

// Add stores a person.
func (ps *People) Add(email, userID string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.list = append(ps.list, Person{Email: email, UserID: userID})
}

// Find lists the persons with email or userID.
func (ps *People) Find(email, userID string) []Person {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out []Person
	for _, p := range ps.list {
		if p.matches(email, userID) {
			out = append(out, p)
		}
	}
	return out
}

// Count is how many persons have email or userID.
func (ps *People) Count(email, userID string) int64 { return int64(len(ps.Find(email, userID))) }

// Remove deletes the persons with email or userID and returns them.
func (ps *People) Remove(email, userID string) []Person {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var gone []Person
	kept := ps.list[:0]
	for _, p := range ps.list {
		if p.matches(email, userID) {
			gone = append(gone, p)
		} else {
			kept = append(kept, p)
		}
	}
	ps.list = kept
	return gone
}

// UserIDSystem is the subject.user_ids key every fake's Config tells its
// connector to read user ids from (connectortest.UserIDSystem).
const UserIDSystem = "app"

// NeedEmail is the subject's email; a fake's helper (who, "hubspotfake:
// Seed") that cannot work without one panics, naming itself.
func NeedEmail(who string, s connectors.Subject) string {
	if s.Email == "" {
		panic(who + " needs a subject with an email")
	}
	return s.Email
}

// NeedUserID is the subject's user id under UserIDSystem; a fake's helper
// that cannot work without one panics, naming itself.
func NeedUserID(who string, s connectors.Subject) string {
	id := s.UserIDs[UserIDSystem]
	if id == "" {
		panic(who + ` needs a subject with UserIDs["` + UserIDSystem + `"]`)
	}
	return id
}
