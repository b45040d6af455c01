// Package httpapi is Lethe's JSON HTTP API for staff and automation:
// bearer tokens with roles, request filing and tracking, certificates and
// signing keys, health and metrics. Every route is listed in routes.go and
// described in openapi.json, served at /openapi.json.
package httpapi

import (
	"context"
	_ "embed"
	"github.com/lethe-dev/lethe/internal/coverage"
	"net/http"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/console"
	"github.com/lethe-dev/lethe/internal/coordinator"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/portal"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/telemetry"
	"github.com/lethe-dev/lethe/internal/translog"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

//go:embed openapi.json
var openAPIDoc []byte

// ConnectorInfo describes a configured connector instance.
type ConnectorInfo struct {
	Name        string  `json:"name"`
	Type        string  `json:"type"`
	Concurrency int     `json:"concurrency"`
	RateLimit   float64 `json:"rate_per_second"`
	MaxAttempts int     `json:"max_attempts"`
}

// Deps are what the server needs.
type Deps struct {
	Store       store.Store
	Coordinator *coordinator.Coordinator
	Auth        *TokenAuth
	// JWKS returns the public signing keys as a JWKS document.
	JWKS       func() []byte
	Metrics    *telemetry.Metrics
	Log        *zap.Logger
	Connectors []ConnectorInfo
	// DataMap lists every connector instance with its latest discovery
	// report (nil: no data map in this process).
	DataMap func(ctx context.Context) ([]coverage.Row, error)
	// DiscoveryInterval is how often discovery runs (0: only by hand).
	DiscoveryInterval time.Duration
	// Ready reports whether dependencies (store, NATS) are usable.
	Ready func(ctx context.Context) error
	Clock func() time.Time
	// Hasher hashes identifiers an auditor searches for.
	Hasher *erasure.Hasher
	// LogReader proves from the transparency log.
	LogReader *translog.Reader
	// CertificateSchemas are the JSON Schemas of certificate payloads, by
	// version ("v1", "v2").
	CertificateSchemas map[string][]byte
	// Callbacks are the connector instances that take vendor callbacks.
	Callbacks map[string]connectors.Callbacker
	// Portal serves the public request pages (nil: portal disabled).
	Portal *portal.Portal
	// Console serves the staff console (nil: no console users).
	Console *console.Console
	// DevMailbox shows the mail lethe dev caught (nil outside dev).
	DevMailbox http.Handler
}

type server struct {
	Deps
}

// NewServer returns the API handler.
func NewServer(d Deps) http.Handler {
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if d.Clock == nil {
		d.Clock = time.Now
	}
	s := &server{Deps: d}
	mux := http.NewServeMux()
	if d.Coordinator == nil {
		s.probeRoutes(mux) // a worker-only process: probes and metrics
	} else {
		s.routes(mux)
	}
	return s.recoverer(s.logRequests(securityHeaders(limitBodies(maxCallback, mux))))
}

func (s *server) healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
			defer cancel()
			if err := s.Ready(ctx); err != nil {
				s.Log.Warn("not ready", zap.Error(err))
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

func (s *server) livez() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

func (s *server) metrics() http.Handler {
	if s.Metrics == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{})
}

func (s *server) openAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPIDoc)
	})
}

func (s *server) keys() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(s.JWKS())
	})
}

func (s *server) notFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such route: see /openapi.json", "")
	})
}

func (s *server) listConnectors() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"connectors": s.Connectors})
	})
}

// coverageMap answers GET /v1/coverage: the data map.
func (s *server) coverageMap() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.DataMap == nil {
			writeError(w, http.StatusNotFound, "not_found", "this process keeps no data map", "")
			return
		}
		rows, err := s.DataMap(r.Context())
		if err != nil {
			s.Log.Error("data map", zap.Error(err))
			writeErr(w, erasure.Errorf(erasure.EUnavailable, "the data map cannot be read now (NATS)"))
			return
		}
		schedule := "off"
		if s.DiscoveryInterval > 0 {
			schedule = s.DiscoveryInterval.String()
		}
		writeJSON(w, http.StatusOK, map[string]any{"connectors": rows, "discovery_interval": schedule})
	})
}

// OpenAPIDocument is the API description served at /openapi.json, for
// tests that check requests and responses against it.
func OpenAPIDocument() []byte { return append([]byte(nil), openAPIDoc...) }
