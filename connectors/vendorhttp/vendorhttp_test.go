package vendorhttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
	"github.com/lethe-dev/lethe/connectors/vendorhttp"
)

func TestClassification(t *testing.T) {
	f := fakevendor.New(t)
	f.Handle("GET /ok", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k" {
			t.Error("auth not set")
		}
		fakevendor.JSON(w, 200, map[string]int{"n": 1})
	})
	f.Handle("GET /gone", func(w http.ResponseWriter, r *http.Request) { fakevendor.JSON(w, 404, map[string]any{}) })
	c := &vendorhttp.Client{Vendor: "Acme", Auth: func(r *http.Request) { r.Header.Set("Authorization", "Bearer k") }, ResetHeader: "X-RateLimit-Reset"}
	get := func(path string, ok ...int) (*vendorhttp.Response, error) {
		req, _ := http.NewRequest("GET", f.URL+path+"?email=alice@example.com", nil)
		return c.Do(context.Background(), req, "contact lookup", ok...)
	}
	r, err := get("/ok")
	var v struct{ N int }
	if err != nil || r.JSON(&v) != nil || v.N != 1 {
		t.Fatalf("ok: %v %+v", err, v)
	}
	if r, err := get("/gone", 404); err != nil || r.Status != 404 {
		t.Errorf("a 404 the caller handles: %v", err)
	}

	for name, tc := range map[string]struct {
		fault     fakevendor.Fault
		permanent bool
		after     time.Duration
	}{
		"429 retry-after":  {fakevendor.TooMany(7 * time.Second), false, 7 * time.Second},
		"500":              {fakevendor.Status(500), false, 0},
		"503":              {fakevendor.Status(503), false, 0},
		"401":              {fakevendor.Status(401), true, 0},
		"403":              {fakevendor.Status(403), true, 0},
		"400":              {fakevendor.Status(400), true, 0},
		"404 not expected": {fakevendor.Status(404), true, 0},
		"429 reset header": {func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-RateLimit-Reset", "30")
			fakevendor.JSON(w, 429, map[string]any{})
		}, false, 30 * time.Second},
	} {
		f.Inject(1, tc.fault)
		_, err := get("/ok")
		perm, after := connectors.Classify(err)
		if err == nil || perm != tc.permanent || after != tc.after {
			t.Errorf("%s: %v → permanent %v, after %v; want %v, %v", name, err, perm, after, tc.permanent, tc.after)
		}
		if err != nil && (strings.Contains(err.Error(), "alice") || strings.Contains(err.Error(), f.URL)) {
			t.Errorf("%s: the error quotes the URL: %v", name, err)
		}
	}
	f.Inject(1, fakevendor.Malformed())
	r, err = get("/ok")
	if err != nil {
		t.Fatal(err)
	}
	if perm, _ := connectors.Classify(r.JSON(&v)); perm {
		t.Error("a malformed body is permanent; it should be retried")
	}
}

func TestTransportErrorsDoNotQuoteTheURL(t *testing.T) {
	c := &vendorhttp.Client{Vendor: "Acme", HTTP: &http.Client{Timeout: 200 * time.Millisecond}}
	req, _ := http.NewRequest("GET", "http://127.0.0.1:1/contacts/alice@example.com", nil)
	_, err := c.Do(context.Background(), req, "lookup")
	if err == nil || strings.Contains(err.Error(), "alice") {
		t.Errorf("transport error %v must exist and not quote the URL", err)
	}
	if perm, _ := connectors.Classify(err); perm {
		t.Error("an unreachable vendor is permanent")
	}
	f := fakevendor.New(t)
	f.Always(fakevendor.Hang(5 * time.Second))
	req, _ = http.NewRequest("GET", f.URL+"/contacts/alice@example.com", nil)
	_, err = c.Do(context.Background(), req, "lookup")
	if err == nil || strings.Contains(err.Error(), "alice") || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("timeout error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Do(ctx, req, "lookup"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestParseRetryAfterAndReset(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		f    func(string, time.Time) time.Duration
		want time.Duration
	}{
		{"120", vendorhttp.ParseRetryAfter, 2 * time.Minute},
		{"Thu, 01 Jan 2026 12:00:30 GMT", vendorhttp.ParseRetryAfter, 30 * time.Second},
		{"soon", vendorhttp.ParseRetryAfter, 0},
		{"", vendorhttp.ParseRetryAfter, 0},
		{"1767268860", vendorhttp.ParseReset, time.Minute}, // unix seconds
		{"45", vendorhttp.ParseReset, 45 * time.Second},
		{"Thu, 01 Jan 2026 12:01:00 +0000", vendorhttp.ParseReset, time.Minute}, // RFC 5322, as Segment sends
		{"1", vendorhttp.ParseReset, time.Second},
	} {
		if got := tc.f(tc.v, now); got != tc.want {
			t.Errorf("%q = %v, want %v", tc.v, got, tc.want)
		}
	}
}

// TestEveryRequestWaitsItsTurn: each request goes through the runtime's
// meter, and a meter that refuses (the task is being cancelled) stops the
// request before it is sent.
func TestEveryRequestWaitsItsTurn(t *testing.T) {
	f := fakevendor.New(t)
	var sent atomic.Int32
	f.Handle("GET /ok", func(w http.ResponseWriter, r *http.Request) { sent.Add(1); fakevendor.JSON(w, 200, map[string]int{}) })
	c := &vendorhttp.Client{Vendor: "Acme"}
	turns := 0
	ctx := connectors.WithMeter(context.Background(), func(ctx context.Context, op string) error {
		if op != "lookup" {
			t.Errorf("the meter was asked for op %q; want the request's, lookup (endpoint limits are keyed by it)", op)
		}
		turns++
		if turns > 3 {
			return context.Canceled
		}
		return nil
	})
	var err error
	for range 4 {
		req, _ := http.NewRequest("GET", f.URL+"/ok", nil)
		_, err = c.Do(ctx, req, "lookup")
	}
	if turns != 4 || sent.Load() != 3 {
		t.Fatalf("%d turns taken, %d requests sent; want 4 and 3", turns, sent.Load())
	}
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "lookup") {
		t.Errorf("a refused turn = %v; want context.Canceled naming the op", err)
	}
}

// TestMinRetryAfter: a 429 naming no delay asks for MinRetryAfter; one
// naming a delay keeps it; other statuses are untouched.
func TestMinRetryAfter(t *testing.T) {
	f := fakevendor.New(t)
	f.Handle("GET /ok", func(w http.ResponseWriter, r *http.Request) { fakevendor.JSON(w, 200, map[string]int{}) })
	c := &vendorhttp.Client{Vendor: "Acme", MinRetryAfter: time.Second}
	for _, tc := range []struct {
		name  string
		fault fakevendor.Fault
		want  time.Duration
	}{
		{"429 without a delay", fakevendor.TooMany(0), time.Second},
		{"429 with Retry-After", fakevendor.TooMany(7 * time.Second), 7 * time.Second},
		{"503", fakevendor.Status(503), 0},
	} {
		f.Inject(1, tc.fault)
		req, _ := http.NewRequest("GET", f.URL+"/ok", nil)
		_, err := c.Do(context.Background(), req, "lookup")
		if perm, after := connectors.Classify(err); err == nil || perm || after != tc.want {
			t.Errorf("%s: %v → permanent %v after %v; want retryable after %v", tc.name, err, perm, after, tc.want)
		}
	}
}

func TestSend(t *testing.T) {
	f := fakevendor.New(t)
	f.Handle("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]string
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&in) != nil {
			fakevendor.JSON(w, 400, map[string]string{"error": "not JSON"})
			return
		}
		fakevendor.JSON(w, 200, map[string]string{"got": in["email"]})
	})
	f.Handle("GET /gone", func(w http.ResponseWriter, r *http.Request) { fakevendor.JSON(w, 404, map[string]string{"got": "x"}) })
	f.Handle("GET /garbled", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("{not json")) })
	c := &vendorhttp.Client{Vendor: "Acme"}
	ctx := context.Background()

	var out struct{ Got string }
	if _, err := c.Send(ctx, http.MethodPost, f.URL+"/echo", map[string]string{"email": "a@example.com"}, &out, "echo"); err != nil || out.Got != "a@example.com" {
		t.Fatalf("Send = %v, %+v; want the body sent as JSON and the answer decoded", err, out)
	}
	out.Got = ""
	if r, err := c.Send(ctx, http.MethodGet, f.URL+"/gone", nil, &out, "lookup", 404); err != nil || r.Status != 404 || out.Got != "" {
		t.Errorf("a 404 the caller handles: %v, decoded %q; want no error and nothing decoded", err, out.Got)
	}
	if _, err := c.Send(ctx, http.MethodGet, f.URL+"/gone", nil, &out, "lookup"); err == nil {
		t.Error("a 404 the caller does not handle passed")
	}
	if _, err := c.Send(ctx, http.MethodGet, f.URL+"/garbled", nil, &out, "lookup"); err == nil || isPermanent(err) {
		t.Errorf("a garbled 200 = %v; want a retryable error", err)
	}
	if _, err := c.Send(ctx, http.MethodGet, "http://[::1]:namedport/x", nil, nil, "lookup"); !isPermanent(err) {
		t.Errorf("a bad URL = %v; want a permanent error", err)
	}
}

func isPermanent(err error) bool {
	perm, _ := connectors.Classify(err)
	return err != nil && perm
}

// TestThrottled: in a batch call (a throttle in the context) a 429 is
// waited out and the request sent again, body and all, at most three
// times; without a throttle, or when it declines, the 429 fails the call.
func TestThrottled(t *testing.T) {
	f := fakevendor.New(t)
	var refusals, calls atomic.Int32
	f.Handle("POST /batch", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var body struct{ IDs []string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.IDs) != 2 {
			t.Errorf("body sent again as %+v (%v)", body, err)
		}
		if refusals.Add(-1) >= 0 {
			w.Header().Set("Retry-After", "0.01")
			fakevendor.JSON(w, 429, map[string]string{"error": "slow down"})
			return
		}
		fakevendor.JSON(w, 200, map[string]int{"n": 2})
	})
	c := &vendorhttp.Client{Vendor: "Acme"}
	var waits []time.Duration
	throttle := func(_ context.Context, op string, after time.Duration) bool {
		if op != "batch delete" {
			t.Errorf("throttled op %q, want the request's", op)
		}
		waits = append(waits, after)
		return true
	}
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		refusals  int32
		wantCalls int32
		wantErr   bool
	}{
		{"no throttle", context.Background(), 1, 1, true},
		{"throttle: once", connectors.WithThrottle(context.Background(), throttle), 1, 2, false},
		{"throttle: three times", connectors.WithThrottle(context.Background(), throttle), 3, 4, false},
		{"throttle: four times is too many", connectors.WithThrottle(context.Background(), throttle), 4, 4, true},
		{"throttle declines", connectors.WithThrottle(context.Background(), func(context.Context, string, time.Duration) bool { return false }), 1, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refusals.Store(tc.refusals)
			calls.Store(0)
			waits = nil
			_, err := c.Send(tc.ctx, http.MethodPost, f.URL+"/batch", map[string][]string{"ids": {"a", "b"}}, nil, "batch delete")
			if (err != nil) != tc.wantErr || calls.Load() != tc.wantCalls {
				t.Errorf("err %v after %d calls; want error %v after %d", err, calls.Load(), tc.wantErr, tc.wantCalls)
			}
			if err != nil && (!errors.Is(err, connectors.ErrRateLimited) || connectors.RateLimitedOp(err) != "batch delete") {
				t.Errorf("the failure is not a rate limit of the request's op: %v (op %q)", err, connectors.RateLimitedOp(err))
			}
			for _, w := range waits {
				if w != 10*time.Millisecond {
					t.Errorf("throttle asked to wait %s, want the vendor's 10ms", w)
				}
			}
		})
	}
}
