package vendorkit

import (
	"time"

	"github.com/lethe-dev/lethe/connectors"
)

// Fields are the config keys most vendors share: where the API is, which
// subject.user_ids key holds the vendor's own user id, and how long Lethe
// waits before looking at a vendor job again. A connector inlines them
// into its Config, and its code reads them as its own (cfg.BaseURL):
//
//	type Config struct {
//		APIKey           config.Secret `yaml:"api_key"`
//		vendorkit.Fields `yaml:",inline"`
//	}
//
// A connector without one of the three (no user id, no job to poll)
// declares what it has itself: an inlined key it ignores would be a key
// the config accepts and silently does nothing with.
type Fields struct {
	// BaseURL is the vendor API's address, checked by the URLRule the
	// connector passes to Check.
	BaseURL string `yaml:"base_url"`
	// UserIDSystem is the subject.user_ids key holding the vendor's user
	// id; default: the instance's name.
	UserIDSystem string `yaml:"user_id_system"`
	// PollInterval is how long Lethe waits before it looks at a vendor
	// job (or for the erased person) again; each connector has its
	// default.
	PollInterval time.Duration `yaml:"poll_interval"`
}

// Check checks base_url against url, user_id_system as a user_ids key and
// poll_interval, filling in poll when it is left out. With a nil url the
// connector checks base_url itself (it may be built from other keys).
func (f *Fields) Check(p *Problems, url *URLRule, poll time.Duration) {
	if url != nil {
		p.BaseURL(&f.BaseURL, *url)
	}
	p.Namespace("user_id_system", f.UserIDSystem)
	p.Interval("poll_interval", &f.PollInterval, poll)
}

// System is the user_ids key an instance named name reads the vendor's
// user id from.
func (f Fields) System(name string) string { return System(f.UserIDSystem, name) }

// IDKind is that key as the kind of identifier plans name.
func (f Fields) IDKind(name string) connectors.Kind { return connectors.UserIDKind(f.System(name)) }
