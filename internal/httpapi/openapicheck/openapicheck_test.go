package openapicheck_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/internal/httpapi/openapicheck"
)

const doc = `{
  "openapi": "3.0.3",
  "info": {"title": "t", "version": "1"},
  "paths": {
    "/v1/things/{id}": {
      "get": {
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": {
          "200": {"description": "ok", "content": {"application/json": {"schema": {
            "type": "object", "required": ["id"], "additionalProperties": false,
            "properties": {"id": {"type": "string"}}}}}},
          "404": {"description": "no such thing"}
        }
      }
    }
  }
}`

func TestCheckerFindsDrift(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/things/good":
			_, _ = w.Write([]byte(`{"id":"good"}`))
		case "/v1/things/extra":
			_, _ = w.Write([]byte(`{"id":"extra","secret":1}`))
		case "/v1/things/big":
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			_, _ = w.Write([]byte(`{}`))
		case "/v1/things/gone":
			w.WriteHeader(http.StatusNotFound)
		case "/v1/vendor":
			w.Header().Set("X-Vendor", "acme") // another server: not checked
			w.WriteHeader(http.StatusTeapot)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	defer srv.Close()
	c, err := openapicheck.New([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: c.Transport(http.DefaultTransport, func(r *http.Response) bool { return r.Header.Get("X-Vendor") == "" })}
	for _, p := range []string{"/v1/things/good", "/v1/things/gone", "/v1/things/extra", "/v1/things/big", "/v1/undocumented", "/console/x", "/v1/vendor"} {
		resp, err := client.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	got := strings.Join(c.Violations(), "\n")
	for _, want := range []string{"GET /v1/things/{id} → 200", "GET /v1/things/{id} → 413", "GET /v1/undocumented → 200: the path is not documented"} {
		if !strings.Contains(got, want) {
			t.Errorf("violations do not name %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "/console") || strings.Count(got, "\n") != 2 {
		t.Errorf("want exactly three violations (extra field, 413, undocumented path):\n%s", got)
	}
	if c.Checked() != 4 {
		t.Errorf("checked %d exchanges, want 4 (the documented path)", c.Checked())
	}
}

func TestBadDocumentIsRefused(t *testing.T) {
	if _, err := openapicheck.New([]byte(`{"openapi":"3.0.3","paths":{"/x":{"get":{"responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"type":"nonsense"}}}}}}}}}`)); err == nil {
		t.Error("an invalid document was accepted")
	}
}
