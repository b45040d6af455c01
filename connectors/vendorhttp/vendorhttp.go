// Package vendorhttp is what connectors to vendor APIs share: one call that
// sends a request, limits the body it reads, and turns the vendor's answer
// into the errors the runtime understands — 429 and 5xx retryable with the
// delay the vendor asked for (Retry-After or its rate-limit reset header),
// 401/403 permanent with a message for staff — without ever quoting a URL
// or body that could hold the person's identifiers.
//
//	resp, err := c.Do(ctx, req, "HubSpot GDPR delete")
//	if err != nil {
//		return connectors.Outcome{}, err // already classified
//	}
package vendorhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/connectors"
)

// MaxBody caps how much of a vendor's response is read.
const MaxBody = 4 << 20

// Client sends requests to one vendor.
type Client struct {
	HTTP *http.Client
	// Vendor names the vendor in messages ("HubSpot").
	Vendor string
	// Auth sets credentials on each request.
	Auth func(*http.Request)
	// ResetHeader, if set, names the header holding when the rate limit
	// resets (unix seconds, or seconds from now when small), used when a
	// 429 has no Retry-After.
	ResetHeader string
	// MinRetryAfter, if set, is the pause a 429 naming no delay asks for:
	// a vendor's documented rate (one request a second) implies one, and
	// without it the runtime would retry at once.
	MinRetryAfter time.Duration
}

// Response is a vendor's answer, body read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r *Response) JSON(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return connectors.Retryable(fmt.Errorf("unreadable response (status %d): %w", r.Status, err), 0)
	}
	return nil
}

// Do sends req and reads the answer. Statuses the caller handles itself
// (2xx, and those in ok) come back as a Response; the others come back as a
// classified error that names op and the status, never the URL or body.
// Every request waits its turn under the instance's rate limit, and under
// op's own where the type registered one (connectors.WaitCallTo), so a
// connector making several requests per task stays within the vendor's
// limits.
//
// A 429 in a context with a throttle (connectors.WithThrottle: the
// runtime's batch calls) is waited out and the request sent again, up to
// maxThrottled times, so one refusal does not throw away a batch's other
// requests.
func (c *Client) Do(ctx context.Context, req *http.Request, op string, ok ...int) (*Response, error) {
	for tries := 1; ; tries++ {
		r, err := c.do(ctx, req, op, ok...)
		if r == nil || r.Status != http.StatusTooManyRequests || err == nil || tries > maxThrottled || (req.Body != nil && req.GetBody == nil) {
			return r, err
		}
		_, after := connectors.Classify(err)
		if !connectors.Throttled(ctx, op, after) {
			return r, err
		}
		if req.GetBody != nil {
			body, gerr := req.GetBody()
			if gerr != nil {
				return r, err
			}
			req.Body = body
		}
	}
}

// maxThrottled is how often one request refused as too many is sent again
// in place (with a throttle in its context).
const maxThrottled = 3

func (c *Client) do(ctx context.Context, req *http.Request, op string, ok ...int) (*Response, error) {
	if err := connectors.WaitCallTo(ctx, op); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	req = req.WithContext(ctx)
	if c.Auth != nil {
		c.Auth(req)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, op, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil {
		return nil, connectors.Retryable(fmt.Errorf("%s %s: reading the response: %w", c.Vendor, op, errors.Unwrap(err)), 0)
	}
	r := &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
	if resp.StatusCode/100 == 2 {
		return r, nil
	}
	for _, s := range ok {
		if s == resp.StatusCode {
			return r, nil
		}
	}
	return r, c.statusError(op, r)
}

// Send is JSONRequest and Do in one call: body is sent as JSON (nil for
// none) and, when out is not nil, a 2xx answer is decoded into it.
//
//	var job struct{ JobID string `json:"job_id"` }
//	resp, err := c.Send(ctx, http.MethodDelete, url, nil, &job, "delete contacts")
func (c *Client) Send(ctx context.Context, method, url string, body, out any, op string, ok ...int) (*Response, error) {
	req, err := JSONRequest(method, url, body)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(ctx, req, op, ok...)
	if err == nil && out != nil && resp.Status/100 == 2 {
		err = resp.JSON(out)
	}
	return resp, err
}

// transportError classifies a failure to get an answer at all. The error
// net/http returns quotes the URL; it is left out.
func (c *Client) transportError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ne net.Error
	what := "no answer"
	if errors.As(err, &ne) && ne.Timeout() {
		what = "timed out"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		what = oe.Op + " failed: " + oe.Err.Error()
	}
	return connectors.Retryable(fmt.Errorf("%s %s: %s", c.Vendor, op, what), 0)
}

func (c *Client) statusError(op string, r *Response) error {
	status := fmt.Sprintf("%s %s: %d %s", c.Vendor, op, r.Status, http.StatusText(r.Status))
	switch {
	case r.Status == http.StatusTooManyRequests:
		after := c.RetryAfter(r.Header)
		if after <= 0 {
			after = c.MinRetryAfter
		}
		return connectors.Retryable(fmt.Errorf("%s: %w", status, connectors.RateLimitedAt(op)), after)
	case r.Status >= 500:
		return connectors.Retryable(fmt.Errorf("%s: the vendor failed", status), c.RetryAfter(r.Header))
	case r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden:
		return connectors.Permanent(fmt.Errorf("%s: the credentials were refused; check the API key or token and its permissions", status))
	case r.Status == http.StatusRequestTimeout:
		return connectors.Retryable(errors.New(status), 0)
	}
	return connectors.Permanent(fmt.Errorf("%s: the vendor refused the request", status))
}

// RetryAfter reads how long the vendor asked to wait: Retry-After (seconds
// or an HTTP date), else the client's rate-limit reset header (unix time,
// or seconds when small), else zero.
func (c *Client) RetryAfter(h http.Header) time.Duration {
	if d := ParseRetryAfter(h.Get("Retry-After"), time.Now()); d > 0 {
		return d
	}
	if c.ResetHeader != "" {
		return ParseReset(h.Get(c.ResetHeader), time.Now())
	}
	return 0
}

// ParseRetryAfter reads a Retry-After value (RFC 9110 §10.2.3).
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// ParseReset reads a rate-limit reset header: a unix time (seconds), a
// count of seconds from now when it is small, or an RFC 5322 date.
func ParseReset(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil && n > 0 {
		if n < 1e9 {
			return time.Duration(n * float64(time.Second))
		}
		if t := time.Unix(int64(n), 0); t.After(now) {
			return t.Sub(now)
		}
		return 0
	}
	for _, layout := range []string{time.RFC1123Z, time.RFC1123, http.TimeFormat} {
		if t, err := time.Parse(layout, v); err == nil && t.After(now) {
			return t.Sub(now)
		}
	}
	return 0
}

// JSONRequest builds a request with a JSON body.
func JSONRequest(method, url string, body any) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return nil, connectors.Permanent(errors.New("the configured base URL is not a valid URL"))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}
