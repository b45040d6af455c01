package connectors

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"sync"

	"go.uber.org/zap"
)

// Limits are a connector's default concurrency and rate; the config file can
// override them per instance. Use the vendor's documented limits.
type Limits struct {
	// Concurrency is how many tasks run at once in each process that
	// runs the instance (default 4).
	Concurrency int
	// RatePerSecond caps calls to the system (0: no cap).
	RatePerSecond float64
	// Burst is how many calls may go at once under the rate (default 1).
	Burst int
	// Endpoints are a vendor's own limits on some of its endpoints, below
	// the instance's rate, keyed by the op its requests name
	// (vendorhttp.Client.Send's op, connectors.WaitCallTo): a request to
	// one waits for both, and the endpoint's budget is shared by every
	// process as the instance's is. Amplitude's user search allows 360
	// queries an hour while its deletions allow one a second.
	Endpoints map[string]Rate
}

// Rate is a limit of PerSecond calls a second with bursts of Burst
// (default 1).
type Rate struct {
	PerSecond float64
	Burst     int
}

// Deps are what the runtime hands every connector constructor.
type Deps struct {
	Logger     *zap.Logger
	HTTPClient *http.Client
	// Getenv reads the environment, for credentials (config.Secret.Reveal).
	Getenv func(string) string
}

// Definition describes one registered connector type.
type Definition struct {
	Type     string
	Summary  string
	Defaults Limits
	// Callbacks: the type takes vendor callbacks (it implements
	// Callbacker), so API processes build its instances even when they
	// run no workers. Set with the TakesCallbacks option.
	Callbacks bool
	// Discovers: the type's connectors implement Discoverer, so the data
	// map, read by processes that build no connectors, can tell a system
	// not discovered yet from one that cannot be. Set with the Discovers
	// option.
	Discovers bool
	build     func(ctx context.Context, name string, decode func(any) error, deps Deps) (Connector, error)
	plan      func(name string, decode func(any) error) (Plan, error)
}

// An Option adds to a type's registration.
type Option func(*Definition)

// TakesCallbacks marks a type whose connectors implement Callbacker: the
// API processes, which receive the callbacks, build its instances (with
// their credentials) even when connectors run in worker processes. Other
// types' credentials stay out of the API processes.
func TakesCallbacks() Option { return func(d *Definition) { d.Callbacks = true } }

// Discovers marks a type whose connectors implement Discoverer.
func Discovers() Option { return func(d *Definition) { d.Discovers = true } }

// Plan decodes and validates an instance's config and returns its plan
// (see Plan), without building the connector or revealing its secrets.
func (d Definition) Plan(name string, decode func(any) error) (Plan, error) {
	return d.plan(name, decode)
}

// Build decodes an instance's config with decode (which must reject unknown
// fields), validates it and constructs the connector.
func (d Definition) Build(ctx context.Context, name string, decode func(any) error, deps Deps) (Connector, error) {
	return d.build(ctx, name, decode, deps)
}

// registry is the one piece of global state in Lethe: connector types add
// themselves to it from init, like database/sql drivers.
var registry = struct {
	sync.RWMutex
	defs map[string]Definition
}{defs: map[string]Definition{}}

var typeNameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// Register adds a connector type. C is its typed config; if *C or C has a
// Validate() error method it runs before build. Register panics on a
// duplicate or malformed name: two connectors silently sharing a name would
// send erasures to the wrong system.
func Register[C any](typ, summary string, defaults Limits, build func(ctx context.Context, name string, cfg C, deps Deps) (Connector, error), opts ...Option) {
	if !typeNameRe.MatchString(typ) {
		panic(fmt.Sprintf("connectors: invalid type name %q", typ))
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.defs[typ]; dup {
		panic(fmt.Sprintf("connectors: type %q registered twice", typ))
	}
	load := func(name string, decode func(any) error) (C, error) {
		var cfg C
		if err := decode(&cfg); err != nil {
			return cfg, fmt.Errorf("connector %q (%s): config: %w", name, typ, err)
		}
		if v, ok := any(&cfg).(interface{ Validate() error }); ok {
			if err := v.Validate(); err != nil {
				return cfg, fmt.Errorf("connector %q (%s): config: %w", name, typ, err)
			}
		}
		return cfg, nil
	}
	def := Definition{
		Type: typ, Summary: summary, Defaults: defaults,
		plan: func(name string, decode func(any) error) (Plan, error) {
			cfg, err := load(name, decode)
			if err != nil {
				return Plan{}, err
			}
			p := EmailPlan()
			if pl, ok := any(&cfg).(Planner); ok {
				p = pl.Plan(name)
			}
			p = p.Normalized()
			if err := p.Check(); err != nil {
				return Plan{}, fmt.Errorf("connector %q (%s): %w", name, typ, err)
			}
			return p, nil
		},
		build: func(ctx context.Context, name string, decode func(any) error, deps Deps) (Connector, error) {
			cfg, err := load(name, decode)
			if err != nil {
				return nil, err
			}
			c, err := build(ctx, name, cfg, deps)
			if err != nil {
				return nil, fmt.Errorf("connector %q (%s): %w", name, typ, err)
			}
			return c, nil
		},
	}
	for _, o := range opts {
		o(&def)
	}
	registry.defs[typ] = def
}

// Lookup returns the definition of a registered type.
func Lookup(typ string) (Definition, bool) {
	registry.RLock()
	defer registry.RUnlock()
	d, ok := registry.defs[typ]
	return d, ok
}

// Types lists the registered type names, sorted.
func Types() []string {
	registry.RLock()
	defer registry.RUnlock()
	names := make([]string, 0, len(registry.defs))
	for n := range registry.defs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// InstanceNameRe is what a connector instance name must match: it becomes
// part of NATS subjects and consumer names.
var InstanceNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
