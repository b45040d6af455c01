package connectortest

import (
	"fmt"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// UserIDSystem is the subject.user_ids key that every fake vendor's
// Config tells its connector to read user ids from. A subject with an
// Email and UserIDs[UserIDSystem] can be seeded in, and erased from, every
// fake at once:
//
//	s := connectors.Subject{Email: "ada@example.com", UserIDs: map[string]string{connectortest.UserIDSystem: "u-42"}}
const UserIDSystem = fakevendor.UserIDSystem

// Vendor is a fake vendor server that tests outside the connector's package can start.
//
//	f := hubspotfake.Start(t, hubspotfake.Options{})
//	want := f.Seed(s)
//	c := connectortest.Build(t, "hubspot", "crm", f.Config())
type Vendor interface {
	// URL is where the fake listens.
	URL() string
	// Config is a connector config block (YAML) pointing at the fake,
	// with credentials it accepts and short poll intervals.
	Config() string
	// Seed stores records about the subject and returns how many an
	// Erase should report.
	Seed(connectors.Subject) int64
	// Count is how many records about the subject the fake still holds.
	Count(connectors.Subject) int64
	// Limited counts the requests the fake's rate limit refused.
	Limited() int
	// Requests counts the requests the fake received.
	Requests() int
}

// VendorSubject is the i-th subject of VendorHarness: an email
// "subject<i>@example.com" and the user id "user-<i>" under UserIDSystem.
func VendorSubject(i int) connectors.Subject {
	return connectors.Subject{
		Email:   fmt.Sprintf("subject%d@example.com", i),
		UserIDs: map[string]string{UserIDSystem: fmt.Sprintf("user-%d", i)},
	}
}

// ResolvesUserID is Harness.Resolves for a vendor that finds a
// VendorSubject's user id under UserIDSystem by their email, and nothing
// else.
func ResolvesUserID(s connectors.Subject) map[connectors.Kind][]string {
	return map[connectors.Kind][]string{connectors.UserIDKind(UserIDSystem): {s.UserIDs[UserIDSystem]}}
}

// VendorHarness is a Harness running connector type typ against the fake
// v: connectors built from v.Config(), records seeded and counted through
// v, subjects from VendorSubject. Add Faulty and Hostile as needed:
//
//	h := connectortest.VendorHarness("hubspot", f)
//	h.Faulty = …
//	connectortest.Run(t, h)
//
// A fake whose vendor can restore deleted records implements
// RecoverableVendor; one whose vendor cannot says so with
// NoRecoverableState.
func VendorHarness(typ string, v Vendor) Harness {
	h := Harness{
		New:     func(t *testing.T) connectors.Connector { return Build(t, typ, typ, v.Config()) },
		Seed:    func(_ *testing.T, s connectors.Subject) int64 { return v.Seed(s) },
		Count:   func(_ *testing.T, s connectors.Subject) int64 { return v.Count(s) },
		Subject: VendorSubject,
	}
	if r, ok := v.(RecoverableVendor); ok {
		h.SeedRecoverable = func(_ *testing.T, s connectors.Subject) int64 { return r.SeedRecoverable(s) }
	}
	if n, ok := v.(interface{ NoRecoverableState() string }); ok {
		h.NoRecoverableState = n.NoRecoverableState()
	}
	if n, ok := v.(interface{ CannotTellAbsent() string }); ok {
		h.CannotTellAbsent = n.CannotTellAbsent()
	}
	return h
}

// RecoverableVendor is a fake of a vendor that keeps deleted records where
// they can be restored (Salesforce's Recycle Bin, HubSpot's archived
// contacts, Mailchimp's archived members).
type RecoverableVendor interface {
	Vendor
	// SeedRecoverable stores records about s in that state and returns
	// how many; Count counts them.
	SeedRecoverable(connectors.Subject) int64
}

// VendorUserID is a subject known only by a user id under UserIDSystem,
// for hostile ids: VendorUserID("../users").
func VendorUserID(id string) connectors.Subject {
	return connectors.Subject{UserIDs: map[string]string{UserIDSystem: id}}
}
