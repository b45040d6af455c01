// Package openapicheck checks HTTP traffic against Lethe's OpenAPI
// document with a third-party validator (kin-openapi), so that the served
// description cannot drift from the server: tests put its Transport under
// their HTTP clients, and every request to a documented path, and every
// answer, is checked.
//
//	c := openapicheck.MustNew(httpapi.OpenAPIDocument())
//	http.DefaultTransport = c.Transport(http.DefaultTransport, isLethe)
//	… run the tests …
//	for _, v := range c.Violations() { … }
//
// A request the document does not allow (a test sending a malformed body
// on purpose) is not a violation; its answer must still be one the
// document lists for the operation. Every answer must be documented:
// its status for the operation, and its body against the schema.
package openapicheck

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	legacyrouter "github.com/getkin/kin-openapi/routers/legacy"
)

// maxViolations bounds what is kept: after that many, the rest is counted.
const maxViolations = 200

// Checker validates traffic against one OpenAPI document.
type Checker struct {
	router routers.Router

	mu         sync.Mutex
	violations []string
	dropped    int
	checked    int
}

// registerHTML lets response bodies of HTML pages through: the document
// describes their status and content type, not their markup.
var registerHTML sync.Once

// New loads and validates doc (OpenAPI 3 as JSON).
func New(doc []byte) (*Checker, error) {
	registerHTML.Do(func() {
		openapi3filter.RegisterBodyDecoder("text/html", func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			b, err := io.ReadAll(r)
			return string(b), err
		})
	})
	loader := openapi3.NewLoader()
	t, err := loader.LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("openapicheck: load: %w", err)
	}
	if err := t.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapicheck: the document is not valid OpenAPI: %w", err)
	}
	r, err := legacyrouter.NewRouter(t)
	if err != nil {
		return nil, fmt.Errorf("openapicheck: router: %w", err)
	}
	return &Checker{router: r}, nil
}

// MustNew is New for test set-up; it panics on a bad document.
func MustNew(doc []byte) *Checker {
	c, err := New(doc)
	if err != nil {
		panic(err)
	}
	return c
}

// Violations lists what did not match the document, one line each
// ("POST /v1/requests → 413: status not documented").
func (c *Checker) Violations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := append([]string(nil), c.violations...)
	if c.dropped > 0 {
		out = append(out, fmt.Sprintf("… and %d more", c.dropped))
	}
	return out
}

// Checked counts the exchanges checked.
func (c *Checker) Checked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checked
}

func (c *Checker) add(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.violations) >= maxViolations {
		c.dropped++
		return
	}
	c.violations = append(c.violations, fmt.Sprintf(format, args...))
}

// Transport checks the exchanges that pass through next and that ours
// says were answered by the server the document describes (tests talk to
// fake vendors through the same client).
func (c *Checker) Transport(next http.RoundTripper, ours func(*http.Response) bool) http.RoundTripper {
	return roundTripper{c: c, next: next, ours: ours}
}

type roundTripper struct {
	c    *Checker
	next http.RoundTripper
	ours func(*http.Response) bool
}

func (rt roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	resp, err := rt.next.RoundTrip(req)
	if err != nil || !rt.ours(resp) {
		return resp, err
	}
	route, params, ferr := rt.c.router.FindRoute(req)
	if ferr != nil {
		// A path the document lacks that the server answers is drift; one
		// it refuses as unknown agrees with the document.
		if documentedPrefix(req.URL.Path) && resp.StatusCode != http.StatusNotFound {
			rt.c.add("%s %s → %d: the path is not documented", req.Method, req.URL.Path, resp.StatusCode)
		}
		return resp, nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	rt.c.check(req, reqBody, route, params, resp, body)
	return resp, nil
}

// documentedPrefix: paths under these must all be in the document.
func documentedPrefix(p string) bool {
	return strings.HasPrefix(p, "/v1/")
}

func (c *Checker) check(req *http.Request, reqBody []byte, route *routers.Route, params map[string]string, resp *http.Response, body []byte) {
	c.mu.Lock()
	c.checked++
	c.mu.Unlock()
	ctx := context.Background()
	// Validate a copy of the request: the validator reads the body.
	r := req.Clone(ctx)
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: opts}
	// A request the document does not allow is the test's own business
	// (an attack, a malformed body); its answer is checked all the same.
	_ = openapi3filter.ValidateRequest(ctx, in)
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		c.add("%s %s → %d: %s", req.Method, route.Path, resp.StatusCode, oneLine(err.Error()))
	}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}
