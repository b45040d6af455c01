package app

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	_ "github.com/lethe-dev/lethe/connectors/all" // register the built-in connectors
	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/console"
	"github.com/lethe-dev/lethe/internal/coordinator"
	"github.com/lethe-dev/lethe/internal/coverage"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/failpoint"
	"github.com/lethe-dev/lethe/internal/httpapi"
	"github.com/lethe-dev/lethe/internal/i18n"
	"github.com/lethe-dev/lethe/internal/notifier"
	"github.com/lethe-dev/lethe/internal/notify"
	"github.com/lethe-dev/lethe/internal/portal"
	"github.com/lethe-dev/lethe/internal/seal"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/store/postgres"
	"github.com/lethe-dev/lethe/internal/store/sqlite"
	"github.com/lethe-dev/lethe/internal/telemetry"
	"github.com/lethe-dev/lethe/internal/translog"
	"github.com/lethe-dev/lethe/internal/worker"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// roles says which parts of Lethe a process runs.
type roles struct {
	api         bool     // HTTP API, outbox relay, coordinator, scheduler
	workers     []string // connector instances to run; nil: all
	noWorkers   bool
	migrate     bool                // apply PostgreSQL migrations at start
	embedded    *server.Server      // dev: the in-process NATS server
	onListening func(addr net.Addr) // dev: print the banner
}

// runtime is one assembled Lethe process.
type runtime struct {
	env       env
	cfg       *config.Config
	log       *zap.Logger
	crash     *failpoint.Set
	store     store.Store
	signer    *certificate.Signer
	jwks      certificate.JWKS
	issuer    *certificate.Issuer
	hasher    *erasure.Hasher
	auth      *httpapi.TokenAuth
	tlog      *translog.Log
	keys      *seal.KeyRing
	instances []worker.Instance
	plans     map[string]connectors.Plan // every instance's, for the coordinator
	nc        *nats.Conn
	js        jetstream.JetStream
	replicas  int // of Lethe's streams and key-value bucket
	metrics   *telemetry.Metrics
	coverage  *coverage.Map // the data map: discovery reports
	// The people's side (API processes): languages, email, the portal.
	catalog *i18n.Catalog
	mailer  notify.Mailer
	catcher *notify.Catcher // lethe dev: mail is caught, not sent
	portal  *portal.Portal
}

// run assembles a process from cfg and runs it until ctx ends or a part
// fails.
func run(ctx context.Context, e env, cfg *config.Config, r roles) (err error) {
	rt := &runtime{env: e, cfg: cfg}
	defer rt.close()
	if err := rt.setUp(ctx, r); err != nil {
		return err
	}
	return rt.serve(ctx, r)
}

func (rt *runtime) setUp(ctx context.Context, r roles) error {
	log, err := telemetry.NewLogger(rt.env.stderr, rt.cfg.Log.Level, rt.cfg.Log.Format)
	if err != nil {
		return fmt.Errorf("config: log.level: %w", err)
	}
	rt.log = log
	if rt.crash, err = failpoint.Parse(rt.env.getenv("LETHE_FAILPOINTS"), rt.env.stderr); err != nil {
		return err
	}
	// A worker-only process reads nothing but NATS and its connectors'
	// settings: no database, no signing, hash or encryption keys, no API
	// tokens, so a vendor's worker pod cannot forge certificates or read
	// requests if it is compromised.
	if r.api {
		if rt.keys, err = loadKeyRing(rt.cfg.Encryption, rt.env.getenv); err != nil {
			return err
		}
		if rt.store, err = openStore(ctx, rt.cfg, rt.env.getenv, rt.keys, r.migrate, log); err != nil {
			return err
		}
		if err := rt.setUpSigning(ctx); err != nil {
			return err
		}
		if rt.hasher, err = loadHasher(rt.cfg.Subject, rt.env.getenv); err != nil {
			return err
		}
		if rt.auth, err = loadTokens(rt.cfg.Auth, rt.env.getenv); err != nil {
			return err
		}
		if err := rt.setUpMail(); err != nil {
			return err
		}
		if rt.plans, err = instancePlans(rt.cfg); err != nil {
			return err
		}
	}
	// Workers build the connectors they run. An API process that runs
	// none (--no-workers) still builds those that take vendor callbacks,
	// which arrive at its HTTP API, and only those: the other connectors'
	// credentials stay with the workers.
	only := r.workers
	if r.api && r.noWorkers {
		only = callbackConnectors(rt.cfg)
	}
	if rt.instances, err = buildConnectors(ctx, rt.cfg, only, rt.env.getenv, log); err != nil {
		return err
	}
	rt.metrics = telemetry.NewMetrics(rt.store)
	if rt.nc, err = connectNATS(rt.cfg.NATS, r.embedded, log); err != nil {
		return err
	}
	if rt.js, err = jetstream.New(rt.nc); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if rt.replicas = rt.cfg.NATS.Replicas; rt.replicas == 0 {
		rt.replicas = bus.ClusterReplicas(rt.nc)
		if rt.replicas == 1 && rt.nc.ConnectedClusterName() != "" {
			log.Warn("the NATS server is in a cluster but told of fewer than three servers: Lethe's streams get one replica; list every server in nats.url or set nats.replicas")
		}
	}
	log.Info("nats connected", zap.String("cluster", rt.nc.ConnectedClusterName()), zap.Int("stream_replicas", rt.replicas))
	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := rt.topology().EnsureStreams(setupCtx, rt.js); err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	names := make([]string, len(rt.cfg.Connectors))
	for i, c := range rt.cfg.Connectors {
		names[i] = c.Name
	}
	rt.metrics.WatchQueues(names, func(ctx context.Context) (map[string]uint64, error) { return bus.QueueDepth(ctx, rt.js) })
	if rt.coverage, err = coverage.Open(setupCtx, rt.js, rt.replicas); err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	rt.metrics.WatchCoverage(names, rt.coverage.Uncovered)
	return nil
}

// discoveryRunner runs, on the configured schedule, the discovery of the
// instances this process runs whose connectors can read their system's
// layout; nil when discovery is off or there are none.
func (rt *runtime) discoveryRunner() *coverage.Runner {
	if rt.cfg.Discovery.Interval == 0 {
		return nil
	}
	var ins []coverage.Instance
	for _, in := range rt.instances {
		if d, ok := in.Connector.(connectors.Discoverer); ok {
			ins = append(ins, coverage.Instance{Name: in.Name, Type: in.Type, Discoverer: d})
		}
	}
	if len(ins) == 0 {
		return nil
	}
	return &coverage.Runner{Map: rt.coverage, Instances: ins, Interval: rt.cfg.Discovery.Interval,
		Timeout: rt.cfg.Discovery.Timeout, Log: rt.log.Named("discovery")}
}

// dataMap lists every configured instance with its latest discovery.
func (rt *runtime) dataMap(ctx context.Context) ([]coverage.Row, error) {
	described := make([]coverage.Described, 0, len(rt.cfg.Connectors))
	for _, c := range rt.cfg.Connectors {
		def, _ := connectors.Lookup(c.Type)
		described = append(described, coverage.Described{Name: c.Name, Type: c.Type, DisplayName: c.DisplayName,
			ErasesBy: rt.plans[c.Name].Uses, Discoverable: def.Discovers})
	}
	return rt.coverage.DataMap(ctx, described)
}

func (rt *runtime) topology() bus.Topology {
	return bus.Topology{Replicas: rt.replicas, AckWait: rt.cfg.NATS.AckWait, TaskMaxAge: rt.cfg.NATS.TaskMaxAge}
}

func (rt *runtime) close() {
	closeConnectors(rt.instances)
	if rt.nc != nil {
		_ = rt.nc.Drain()
	}
	if rt.store != nil {
		rt.store.Close()
	}
	if rt.log != nil {
		_ = rt.log.Sync()
	}
}

func (rt *runtime) serve(ctx context.Context, r roles) error {
	g, ctx := errgroup.WithContext(ctx)
	var coord *coordinator.Coordinator
	if r.api {
		coord = rt.coordinator()
		relay := bus.NewRelay(bus.Relay{Store: rt.store, JS: rt.js, Log: rt.log.Named("relay"),
			Crash: rt.crash, Published: rt.metrics.OutboxPublished})
		coord.Nudge = relay.Nudge
		results, err := rt.topology().CoordinatorConsumer(ctx, rt.js)
		if err != nil {
			return err
		}
		g.Go(func() error { return relay.Run(ctx) })
		g.Go(func() error { return coord.RunResults(ctx, results, 8) })
		g.Go(func() error { return coord.RunScheduler(ctx) })
		g.Go(func() error { return coord.RunHousekeeping(ctx) })
	}
	if len(rt.instances) > 0 && !r.noWorkers {
		w := &worker.Worker{JS: rt.js, Topology: rt.topology(), Log: rt.log.Named("worker"),
			Metrics: rt.metrics, Crash: rt.crash, Timeout: rt.cfg.Tasks.Timeout}
		g.Go(func() error { return w.Run(ctx, rt.instances) })
		if d := rt.discoveryRunner(); d != nil {
			g.Go(func() error { return d.Run(ctx) })
		}
	}
	if coord != nil && len(rt.instances) > 0 && !r.noWorkers {
		// A sweep needs the store and the hash key as well as the
		// instances: processes that run both.
		sw, err := rt.sweeper(ctx)
		if err != nil {
			return err
		}
		if sw != nil {
			g.Go(func() error { return sw.Run(ctx) })
		}
	}
	ln, err := net.Listen("tcp", rt.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", rt.cfg.Listen, err)
	}
	h, err := rt.handler(coord) // builds the portal the notifier links to
	if err != nil {
		return err
	}
	if coord != nil && rt.portal != nil {
		notices, err := rt.topology().NotifierConsumer(ctx, rt.js)
		if err != nil {
			return err
		}
		n := &notifier.Notifier{Store: rt.store, Mailer: rt.mailer, Catalog: rt.catalog, Links: rt.portal,
			BaseURL: rt.cfg.PublicURL, Org: rt.cfg.Organisation, Log: rt.log.Named("notifier")}
		g.Go(func() error { return n.Run(ctx, notices) })
	}
	// Announce before serving: whoever sees /healthz answer has the banner.
	rt.log.Info("lethe started", zap.String("listen", ln.Addr().String()), zap.Bool("api", r.api),
		zap.Int("connectors", len(rt.instances)), zap.String("store", rt.cfg.Store.Driver))
	if r.onListening != nil {
		r.onListening(ln.Addr())
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute}
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	})
	err = g.Wait()
	rt.log.Info("lethe stopped")
	return err
}

// setUpMail loads the languages and the mailer: SMTP when configured,
// the dev mail catcher under lethe dev, none otherwise.
func (rt *runtime) setUpMail() error {
	var err error
	if rt.catalog, err = i18n.Load(); err != nil {
		return err
	}
	switch {
	case rt.cfg.SMTP.Host != "":
		s, err := notify.NewSMTP(rt.cfg.SMTP, rt.log.Named("smtp"))
		if err != nil {
			return fmt.Errorf("config: smtp: %w", err)
		}
		rt.mailer = s
	case rt.cfg.DevMail():
		rt.catcher = notify.NewCatcher(rt.log.Named("mail"))
		rt.mailer = rt.catcher
	}
	return nil
}

// people builds the portal and the console, when configured.
func (rt *runtime) people(coord *coordinator.Coordinator) (*console.Console, error) {
	if rt.cfg.Portal.Enabled {
		if rt.mailer == nil {
			return nil, errors.New("config: portal.enabled needs smtp.host: the portal emails people a code")
		}
		mailer, org := rt.mailer, rt.cfg.Organisation
		p, err := portal.New(portal.Deps{
			Store: rt.store, Coordinator: coord, Hasher: rt.hasher, Catalog: rt.catalog, Config: rt.cfg.Portal,
			LinkKey: rt.hasher.DeriveKey("portal links"), BaseURL: rt.cfg.PublicURL, Org: org, SystemNames: systemNames(rt.cfg.Connectors),
			InsecureCookies: rt.cfg.Console.InsecureCookies, TrustProxyHeader: rt.cfg.Portal.TrustProxyHeader,
			Log: rt.log.Named("portal"),
			SendCode: func(ctx context.Context, to string, b *i18n.Bundle, code, verifyURL, statusURL string, ttl time.Duration) error {
				m, err := notify.Compose(b, notify.KindVerify, to, notify.Data{Org: org, Code: code,
					Link: verifyURL, Status: statusURL, Minutes: max(1, int(ttl/time.Minute))})
				if err != nil {
					return err
				}
				return notify.Retry(ctx, mailer, m, 2)
			},
		})
		if err != nil {
			return nil, fmt.Errorf("portal: %w", err)
		}
		rt.portal = p
	}
	if len(rt.cfg.Console.Users) == 0 {
		return nil, nil
	}
	names := make([]string, len(rt.cfg.Connectors))
	for i, c := range rt.cfg.Connectors {
		names[i] = c.Name
	}
	jwks, _ := json.MarshalIndent(rt.jwks, "", "  ")
	con, err := console.New(console.Deps{Store: rt.store, Coordinator: coord, Hasher: rt.hasher, Config: rt.cfg.Console,
		Connectors: names, JWKS: func() []byte { return jwks }, DataMap: rt.dataMap, DiscoveryInterval: rt.cfg.Discovery.Interval, Metrics: rt.metrics, Log: rt.log.Named("console"), Getenv: rt.env.getenv})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	return con, nil
}

func (rt *runtime) coordinator() *coordinator.Coordinator {
	cns := coordinatorConnectors(rt.cfg, rt.plans)
	t := rt.cfg.Tasks
	return coordinator.New(coordinator.Deps{
		Store: rt.store, Hasher: rt.hasher, Certifier: rt.issuer,
		Log: rt.log.Named("coordinator"), Metrics: rt.metrics, Crash: rt.crash,
	}, coordinator.Config{
		Connectors: cns, MaxAttempts: t.MaxAttempts, RetryInitial: t.RetryInitial, RetryMax: t.RetryMax,
		PollInterval: t.PollInterval, PollLease: t.Timeout + time.Minute, SchedulerInterval: t.SchedulerInterval,
		RedispatchAfter: t.RedispatchAfter, Notify: rt.mailer != nil && rt.cfg.Portal.Enabled,
		Retention: coordinator.Retention{ShredAfter: rt.cfg.Retention.ShredAfter, KeepRequests: rt.cfg.Retention.KeepRequests,
			UnverifiedAfter: rt.cfg.Retention.UnverifiedAfter, SweepInterval: rt.cfg.Retention.SweepInterval},
	})
}

// callbacks are the connector instances that take vendor callbacks.
func (rt *runtime) callbacks() map[string]connectors.Callbacker {
	m := map[string]connectors.Callbacker{}
	for _, in := range rt.instances {
		if cb, ok := in.Connector.(connectors.Callbacker); ok {
			m[in.Name] = cb
		}
	}
	return m
}

func (rt *runtime) handler(coord *coordinator.Coordinator) (http.Handler, error) {
	var con *console.Console
	if coord != nil {
		var err error
		if con, err = rt.people(coord); err != nil {
			return nil, err
		}
	}
	var mailbox http.Handler
	if rt.catcher != nil {
		mailbox = rt.catcher.Handler()
	}
	jwks, _ := json.MarshalIndent(rt.jwks, "", "  ")
	var infos []httpapi.ConnectorInfo
	for _, c := range rt.cfg.Connectors {
		def, _ := connectors.Lookup(c.Type)
		conc, rate := c.Concurrency, c.RatePerSecond
		if conc == 0 {
			conc = def.Defaults.Concurrency
		}
		if rate == 0 {
			rate = def.Defaults.RatePerSecond
		}
		maxAttempts := c.MaxAttempts
		if maxAttempts == 0 {
			maxAttempts = rt.cfg.Tasks.MaxAttempts
		}
		infos = append(infos, httpapi.ConnectorInfo{Name: c.Name, Type: c.Type, Concurrency: conc, RateLimit: rate, MaxAttempts: maxAttempts})
	}
	var dataMap func(context.Context) ([]coverage.Row, error)
	if coord != nil {
		dataMap = rt.dataMap
	}
	return httpapi.NewServer(httpapi.Deps{
		DataMap: dataMap, DiscoveryInterval: rt.cfg.Discovery.Interval,
		Portal: rt.portal, Console: con, DevMailbox: mailbox,
		Store: rt.store, Coordinator: coord, Auth: rt.auth, Metrics: rt.metrics, Log: rt.log.Named("http"),
		JWKS: func() []byte { return jwks }, Connectors: infos,
		Hasher: rt.hasher, LogReader: translog.NewReader(rt.store), CertificateSchemas: map[string][]byte{"v1": certificate.SchemaJSON, "v2": certificate.SchemaV2JSON},
		Callbacks: rt.callbacks(),
		Ready: func(ctx context.Context) error {
			if rt.store != nil && rt.store.Ping(ctx) != nil {
				return errors.New("store unreachable")
			}
			if !rt.nc.IsConnected() {
				return errors.New("NATS disconnected")
			}
			return nil
		},
	}), nil
}

// loadKeyRing builds the key-encryption key ring from the config.
func loadKeyRing(c config.Encryption, getenv func(string) string) (*seal.KeyRing, error) {
	var keks []seal.KEK
	for i, k := range c.Keys {
		text, err := k.Key.Reveal(getenv)
		if err != nil {
			return nil, fmt.Errorf("config: encryption.keys[%d].key: %w", i, err)
		}
		b, err := decodeKey(text)
		if err != nil {
			return nil, fmt.Errorf("config: encryption.keys[%d].key: %w", i, err)
		}
		keks = append(keks, seal.KEK{ID: k.ID, Key: b})
	}
	ring, err := seal.NewKeyRing(keks...)
	if err != nil {
		return nil, fmt.Errorf("config: encryption.keys: %w", err)
	}
	return ring, nil
}

func openStore(ctx context.Context, cfg *config.Config, getenv func(string) string, keys seal.Wrapper, migrate bool, log *zap.Logger) (store.Store, error) {
	url, err := cfg.Store.URL.Reveal(getenv)
	if err != nil {
		return nil, fmt.Errorf("config: store.url: %w", err)
	}
	switch cfg.Store.Driver {
	case "sqlite":
		return sqlite.Open(ctx, url, keys)
	default:
		if migrate {
			n, err := postgres.Migrate(ctx, url)
			if err != nil {
				return nil, err
			}
			if n > 0 {
				log.Info("database migrated", zap.Int("migrations", n))
			}
		}
		return postgres.Open(ctx, url, postgres.Options{MaxConns: int32(cfg.Store.MaxConns), Keys: keys})
	}
}

// setUpSigning loads the keys, builds the certificate issuer and its
// transparency log, and records the active key's activation and the
// retired keys' retirement in the log.
func (rt *runtime) setUpSigning(ctx context.Context) error {
	priv, jwks, err := loadSigning(rt.cfg.Signing, rt.env.getenv)
	if err != nil {
		return err
	}
	rt.signer, rt.jwks = certificate.NewSigner(priv), jwks
	origin := rt.cfg.Certificates.LogOrigin
	logSigner, err := translog.NewLogSigner(origin, priv)
	if err != nil {
		return fmt.Errorf("config: certificates.log_origin: %w", err)
	}
	rt.tlog = translog.NewLog(origin, logSigner)
	rt.issuer = &certificate.Issuer{Signer: rt.signer, Log: rt.tlog, Options: certificate.Options{
		Issuer: rt.cfg.Organisation, BackupRetention: rt.cfg.Certificates.BackupRetention}}
	active := rt.signer.PublicJWK()
	var retired []translog.KeyEvent
	for _, k := range jwks.Keys {
		if k.Kid != active.Kid {
			retired = append(retired, translog.KeyEvent{Event: translog.KindKeyRetired, Kid: k.Kid, X: k.X})
		}
	}
	n, err := rt.tlog.RecordKeys(ctx, rt.store, translog.KeyEvent{Event: translog.KindKeyActivated, Kid: active.Kid, X: active.X}, retired, erasure.SystemClock())
	if err != nil {
		return fmt.Errorf("transparency log: record keys: %w", err)
	}
	if n > 0 {
		rt.log.Info("signing keys recorded in the transparency log", zap.Int("entries", n), zap.String("active_kid", active.Kid))
	}
	return nil
}

func loadSigning(s config.Signing, getenv func(string) string) (ed25519.PrivateKey, certificate.JWKS, error) {
	pemText, err := s.Key.Reveal(getenv)
	if err != nil {
		return nil, certificate.JWKS{}, fmt.Errorf("config: signing.key: %w", err)
	}
	priv, err := certificate.ParsePrivateKeyPEM([]byte(pemText))
	if err != nil {
		return nil, certificate.JWKS{}, fmt.Errorf("config: signing.key: %w", err)
	}
	jwks := certificate.JWKS{Keys: []certificate.JWK{certificate.NewSigner(priv).PublicJWK()}}
	for i, path := range s.PublicKeys {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, jwks, fmt.Errorf("config: signing.public_keys[%d]: %w", i, err)
		}
		old, err := certificate.ParseKeySet(b)
		if err != nil {
			return nil, jwks, fmt.Errorf("config: signing.public_keys[%d]: %w", i, err)
		}
		for _, k := range old.Keys {
			if !slices.ContainsFunc(jwks.Keys, func(j certificate.JWK) bool { return j.Kid == k.Kid }) {
				jwks.Keys = append(jwks.Keys, k)
			}
		}
	}
	return priv, jwks, nil
}

func loadHasher(s config.Subject, getenv func(string) string) (*erasure.Hasher, error) {
	text, err := s.HashKey.Reveal(getenv)
	if err != nil {
		return nil, fmt.Errorf("config: subject.hash_key: %w", err)
	}
	key, err := decodeKey(text)
	if err != nil {
		return nil, fmt.Errorf("config: subject.hash_key: %w", err)
	}
	h, err := erasure.NewHasher(key)
	if err != nil {
		return nil, fmt.Errorf("config: subject.hash_key: %w", err)
	}
	return h, nil
}

// decodeKey reads a key written as hex or base64.
func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("must be hex or base64")
}

func loadTokens(a config.Auth, getenv func(string) string) (*httpapi.TokenAuth, error) {
	var tokens []httpapi.Token
	for i, t := range a.Tokens {
		tok := httpapi.Token{Name: t.Name, Role: httpapi.Role(t.Role)}
		if t.SHA256 != "" {
			b, _ := hex.DecodeString(t.SHA256) // validated by config
			copy(tok.SHA256[:], b)
		} else {
			v, err := t.Token.Reveal(getenv)
			if err != nil {
				return nil, fmt.Errorf("config: auth.tokens[%d].token: %w", i, err)
			}
			if len(v) < 16 {
				return nil, fmt.Errorf("config: auth.tokens[%d].token: at least 16 characters", i)
			}
			tok.SHA256 = sha256Sum(v)
		}
		tokens = append(tokens, tok)
	}
	return httpapi.NewTokenAuth(tokens), nil
}

// buildConnectors constructs the configured connector instances (or only
// those named in only) through the registry.
// callbackConnectors names the configured instances whose type takes
// vendor callbacks (never nil: an empty list builds none).
func callbackConnectors(cfg *config.Config) []string {
	names := []string{}
	for _, c := range cfg.Connectors {
		if def, ok := connectors.Lookup(c.Type); ok && def.Callbacks {
			names = append(names, c.Name)
		}
	}
	return names
}

func buildConnectors(ctx context.Context, cfg *config.Config, only []string, getenv func(string) string, log *zap.Logger) ([]worker.Instance, error) {
	var out []worker.Instance
	var errs []error
	for _, name := range only {
		if !slices.ContainsFunc(cfg.Connectors, func(c config.Connector) bool { return c.Name == name }) {
			errs = append(errs, fmt.Errorf("--connectors: no connector named %q in the config", name))
		}
	}
	client := &http.Client{Timeout: cfg.Tasks.Timeout}
	for i, c := range cfg.Connectors {
		if only != nil && !slices.Contains(only, c.Name) {
			continue
		}
		plan, err := instancePlan(i, c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		def, _ := connectors.Lookup(c.Type)
		conn, err := def.Build(ctx, c.Name, c.Decode, connectors.Deps{
			Logger: log.Named("connector").With(zap.String("connector", c.Name)), HTTPClient: client, Getenv: getenv,
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("config: connectors[%d]: %w", i, err))
			continue
		}
		if _, ok := conn.(connectors.Resolver); plan.Resolves() && !ok {
			if _, outside := conn.(connectors.Outsider); !outside {
				errs = append(errs, fmt.Errorf("config: connectors[%d]: %s says it supplies %s but its connector cannot look people up", i, c.Name, kindsText(plan.Gives)))
			}
		}
		if _, ok := conn.(connectors.Verifier); len(c.RecheckAfter) > 0 && !ok {
			errs = append(errs, fmt.Errorf("config: connectors[%d].recheck_after: %s (%s) cannot look people up again, so it cannot be re-checked", i, c.Name, c.Type))
		}
		in := worker.Instance{Name: c.Name, Type: c.Type, Connector: conn, Plan: plan,
			Concurrency: c.Concurrency, RatePerSecond: c.RatePerSecond, Burst: c.Burst, RateHeadroom: c.RateHeadroom}
		if in.Concurrency == 0 {
			in.Concurrency = max(def.Defaults.Concurrency, 1)
		}
		if in.RatePerSecond == 0 {
			in.RatePerSecond = def.Defaults.RatePerSecond
		}
		if in.Burst == 0 {
			in.Burst = def.Defaults.Burst
		}
		endpoints, err := endpointRates(def, c.EndpointRates)
		if err != nil {
			errs = append(errs, fmt.Errorf("config: connectors[%d].endpoint_rates: %s (%s): %w", i, c.Name, c.Type, err))
		}
		in.Endpoints = endpoints
		if _, ok := conn.(connectors.BatchEraser); ok {
			in.BatchWindow, in.BatchMax = worker.DefaultBatchWindow, c.BatchMax
			if c.BatchWindow != nil {
				in.BatchWindow = *c.BatchWindow
			}
		} else if c.BatchWindow != nil || c.BatchMax != 0 {
			errs = append(errs, fmt.Errorf("config: connectors[%d]: %s (%s) erases one person a call: batch_window and batch_max do not apply", i, c.Name, c.Type))
		}
		out = append(out, in)
	}
	if err := errors.Join(errs...); err != nil {
		closeConnectors(out)
		return nil, err
	}
	return out, nil
}

func connectNATS(c config.NATS, embedded *server.Server, log *zap.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("lethe"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("nats reconnected") }),
	}
	if embedded != nil {
		opts = append(opts, nats.InProcessServer(embedded))
	}
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats: cannot connect to %s: %w", c.URL, err)
	}
	return nc, nil
}

// systemNames are the connector instances as people are shown them.
func systemNames(cs []config.Connector) map[string]string {
	names := make(map[string]string, len(cs))
	for _, c := range cs {
		names[c.Name] = c.Shown()
	}
	return names
}

// endpointRates are the type's own endpoint limits with the instance's
// overrides (config endpoint_rates); an override of an endpoint the type
// does not limit on its own is an error naming those it does.
func endpointRates(def connectors.Definition, overrides map[string]config.EndpointRate) (map[string]connectors.Rate, error) {
	if len(overrides) == 0 {
		return def.Defaults.Endpoints, nil
	}
	out := maps.Clone(def.Defaults.Endpoints)
	var errs []error
	for _, op := range slices.Sorted(maps.Keys(overrides)) {
		rate, ok := out[op]
		if !ok {
			known := slices.Sorted(maps.Keys(def.Defaults.Endpoints))
			if len(known) == 0 {
				errs = append(errs, fmt.Errorf("%q: the type limits no endpoint on its own", op))
			} else {
				errs = append(errs, fmt.Errorf("%q is not an endpoint the type limits on its own (it limits %s)", op, strings.Join(known, ", ")))
			}
			continue
		}
		o := overrides[op]
		out[op] = connectors.Rate{PerSecond: o.RatePerSecond, Burst: cmp.Or(o.Burst, rate.Burst)}
	}
	return out, errors.Join(errs...)
}

// closeConnectors closes the instances' connectors that hold resources
// (database pools).
func closeConnectors(instances []worker.Instance) {
	for _, in := range instances {
		if c, ok := in.Connector.(io.Closer); ok {
			_ = c.Close()
		}
	}
}
