package httpapi

import "net/http"

// routes lists every route the server answers. Reads need any role;
// changes need admin or agent.
func (s *server) routes(mux *http.ServeMux) {
	s.probeRoutes(mux)
	mux.Handle("GET /openapi.json", s.openAPI())
	mux.Handle("GET /v1/keys", s.keys())
	mux.Handle("GET /v1/schemas/certificate-v1.json", s.certificateSchema("v1"))
	mux.Handle("GET /v1/schemas/certificate-v2.json", s.certificateSchema("v2"))
	mux.Handle("GET /v1/certificates/{id}", s.publicCertificate())
	mux.Handle("GET /v1/certificates/{id}/rechecks", s.certificateRechecks())
	mux.Handle("GET /v1/log/checkpoint", s.getCheckpoint())
	mux.Handle("GET /v1/log/proof/inclusion", s.inclusionProof())
	mux.Handle("GET /v1/log/proof/consistency", s.consistencyProof())
	mux.Handle("GET /v1/log/entries", s.listLogEntries())
	mux.Handle("GET /audit", s.auditPage())
	mux.Handle("GET /audit/{file}", s.auditAsset())

	mux.Handle("POST /v1/requests", s.authorize(canWrite, s.createRequest()))
	mux.Handle("POST /v1/requests/batch", s.authorize(canWrite, s.createBatch()))
	mux.Handle("GET /v1/requests", s.authorize(canRead, s.listRequests()))
	mux.Handle("GET /v1/batches", s.authorize(canRead, s.listBatches()))
	mux.Handle("GET /v1/batches/{name}", s.authorize(canRead, s.getBatch()))
	mux.Handle("GET /v1/requests/{id}", s.authorize(canRead, s.getRequest()))
	mux.Handle("GET /v1/requests/{id}/events", s.authorize(canRead, s.listEvents()))
	mux.Handle("GET /v1/requests/{id}/certificate", s.authorize(canRead, s.getCertificate()))
	mux.Handle("POST /v1/requests/{id}/cancel", s.authorize(canWrite, s.cancelRequest()))
	mux.Handle("POST /v1/requests/{id}/tasks/{connector}/retry", s.authorize(canWrite, s.retryTask()))
	mux.Handle("POST /v1/requests/{id}/shred", s.authorize(canAdmin, s.shredRequest()))
	mux.Handle("POST /v1/requests/{id}/approve", s.authorize(canWrite, s.approveRequest()))
	mux.Handle("POST /v1/requests/{id}/deny", s.authorize(canWrite, s.denyRequest()))
	mux.Handle("POST /v1/requests/{id}/extend", s.authorize(canWrite, s.extendRequest()))
	mux.Handle("POST /v1/requests/{id}/tasks/{connector}/exempt", s.authorize(canWrite, s.exemptTask()))
	mux.Handle("POST /v1/requests/{id}/tasks/{connector}/complete", s.authorize(canWrite, s.completeTask()))
	mux.Handle("POST /v1/requests/{id}/tasks/{connector}/not-applicable", s.authorize(canWrite, s.notApplicable()))
	mux.Handle("POST /v1/requests/{id}/identifiers", s.authorize(canWrite, s.addIdentifiers()))
	mux.Handle("POST /v1/requests/{id}/flag/clear", s.authorize(canWrite, s.clearFlag()))
	mux.Handle("POST /v1/connectors/{name}/callback", s.connectorCallback())
	mux.Handle("GET /processors/{name}/confirm/{token}", s.processorConfirmPage())
	mux.Handle("POST /processors/{name}/confirm/{token}", s.processorConfirm())
	mux.Handle("GET /v1/suppressions/check", s.authorize(canRead, s.checkSuppression()))
	mux.Handle("POST /v1/suppressions/check", s.authorize(canRead, s.checkSuppression()))
	mux.Handle("GET /v1/connectors", s.authorize(canRead, s.listConnectors()))
	mux.Handle("GET /v1/coverage", s.authorize(canRead, s.coverageMap()))
	mux.Handle("POST /v1/audit/search", s.authorize(canRead, s.searchSubject()))
	mux.Handle("GET /v1/audit/requests", s.authorize(canRead, s.exportRequests()))

	if s.Portal != nil {
		s.portalRoutes(mux)
	}
	if s.Console != nil {
		s.consoleRoutes(mux)
	}
	if s.DevMailbox != nil {
		mux.Handle("GET /dev/mailbox", s.DevMailbox)
	}

	mux.Handle("/", s.notFound())
}

// portalRoutes are the public request pages for data subjects
// (internal/portal checks form tokens, origins and limits itself).
func (s *server) portalRoutes(mux *http.ServeMux) {
	p := s.Portal
	mux.Handle("GET /portal", p.Form())
	mux.Handle("POST /portal", p.Submit())
	mux.Handle("GET /portal/verify/{token}", p.VerifyPage())
	mux.Handle("POST /portal/verify/{token}", p.Verify())
	mux.Handle("POST /portal/resend/{token}", p.Resend())
	mux.Handle("GET /portal/status/{token}", p.Status())
	mux.Handle("GET /portal/assets/{file}", p.Asset())
}

// consoleRoutes are the staff console's pages (internal/console checks
// sessions, roles and CSRF tokens itself).
func (s *server) consoleRoutes(mux *http.ServeMux) {
	c := s.Console
	mux.Handle("GET /console/login", c.LoginPage())
	mux.Handle("POST /console/login", c.Login())
	mux.Handle("POST /console/logout", c.Logout())
	mux.Handle("GET /console", c.List())
	mux.Handle("POST /console/search", c.Search())
	mux.Handle("GET /console/requests.csv", c.CSV())
	mux.Handle("GET /console/batches", c.Batches())
	mux.Handle("POST /console/bulk", c.Bulk())
	mux.Handle("GET /console/requests/{id}", c.Request())
	mux.Handle("POST /console/requests/{id}/{action}", c.Act())
	mux.Handle("GET /console/keys", c.Keys())
	mux.Handle("GET /console/coverage", c.DataMap())
	mux.Handle("GET /console/assets/{file}", c.Asset())
	mux.Handle("/console/", c.NotFound())
}

// probeRoutes are served by every process, workers included.
func (s *server) probeRoutes(mux *http.ServeMux) {
	mux.Handle("GET /healthz", s.healthz())
	mux.Handle("GET /livez", s.livez())
	mux.Handle("GET /metrics", s.metrics())
}
