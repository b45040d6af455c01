package httpapi

import "net/http"

// routes lists every route the server answers. Reads need any role;
// changes need admin or agent.
func (s *server) routes(mux *http.ServeMux) {
	s.probeRoutes(mux)
	mux.Handle("GET /openapi.json", s.openAPI())
	mux.Handle("GET /v1/keys", s.keys())

	mux.Handle("POST /v1/requests", s.authorize(canWrite, s.createRequest()))
	mux.Handle("GET /v1/requests", s.authorize(canRead, s.listRequests()))
	mux.Handle("GET /v1/requests/{id}", s.authorize(canRead, s.getRequest()))
	mux.Handle("GET /v1/requests/{id}/events", s.authorize(canRead, s.listEvents()))
	mux.Handle("GET /v1/requests/{id}/certificate", s.authorize(canRead, s.getCertificate()))
	mux.Handle("POST /v1/requests/{id}/cancel", s.authorize(canWrite, s.cancelRequest()))
	mux.Handle("POST /v1/requests/{id}/tasks/{connector}/retry", s.authorize(canWrite, s.retryTask()))
	mux.Handle("GET /v1/connectors", s.authorize(canRead, s.listConnectors()))

	mux.Handle("/", s.notFound())
}

// probeRoutes are served by every process, workers included.
func (s *server) probeRoutes(mux *http.ServeMux) {
	mux.Handle("GET /healthz", s.healthz())
	mux.Handle("GET /livez", s.livez())
	mux.Handle("GET /metrics", s.metrics())
}
