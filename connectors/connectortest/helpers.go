package connectortest

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// StartFake adapts a fake's Start (every <vendor>fake.Start takes
// fakevendor.Options) to VendorCases.Start: a fresh fake with no options.
//
//	connectortest.RunVendor(t, connectortest.VendorSuite{VendorCases: connectortest.VendorCases{
//		Type:  "sendgrid",
//		Start: connectortest.StartFake(sendgridfake.Start),
//		…
//	}})
func StartFake[F FaultyVendor](start func(testing.TB, fakevendor.Options) F) func(testing.TB) FaultyVendor {
	return func(t testing.TB) FaultyVendor { return start(t, fakevendor.Options{}) }
}

// PollToEnd polls out, the answer of an Erase, as the runtime does until
// it is no longer running, and returns the last answer with the
// EvidenceText of each poll's answer in turn. It fails the test on a Poll
// error or if the job still runs after max polls.
//
//	out, err := c.Erase(ctx, s)
//	…
//	out, states := connectortest.PollToEnd(t, c, out, 10)
//	if strings.Join(states, "|") != want { … }
func PollToEnd(t testing.TB, c connectors.Connector, out connectors.Outcome, max int) (connectors.Outcome, []string) {
	t.Helper()
	var states []string
	for out.Status == connectors.StatusRunning {
		if len(states) >= max {
			t.Fatalf("still running after %d polls: %s", max, strings.Join(states, "|"))
		}
		var err error
		if out, err = c.(connectors.Poller).Poll(Ctx(t), out.JobRef); err != nil {
			t.Fatal(err)
		}
		states = append(states, EvidenceText(out.Evidence))
	}
	return out, states
}

// RefusedUnsent fails the test unless Erase refuses s with a permanent
// error whose text holds why (any text if why is empty), Verify (if c
// verifies) refuses it permanently too, never calling it clean, and no
// request was sent meanwhile: requests counts what the fake received. It
// is the check for a subject without the identifier an instance searches
// by (the instance's keys were changed): nothing was searched, which is
// never "not found" or "clean".
//
//	f := sendgridfake.Start(t, sendgridfake.Options{})
//	connectortest.RefusedUnsent(t, newConnector(t, f), connectors.Subject{Phone: "+447700900123"}, "no email", f.Requests)
func RefusedUnsent(t *testing.T, c connectors.Connector, s connectors.Subject, why string, requests func() int) {
	t.Helper()
	before := requests()
	if _, err := c.Erase(Ctx(t), s); err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), why) {
		t.Errorf("Erase = %v; want a permanent error saying %q", err, why)
	}
	if v, ok := c.(connectors.Verifier); ok {
		if _, err := v.Verify(Ctx(t), s); err == nil || !IsPermanent(err) {
			t.Errorf("Verify = %v; want a permanent refusal, not clean", err)
		}
	}
	if n := requests() - before; n != 0 {
		t.Errorf("%d requests sent for a subject that was refused", n)
	}
}

// OfflineClient is an HTTP client that reaches no network: it records each
// request as "METHOD URL" and answers every one with status and body. For
// a test of where a connector sends requests by default (a vendor's real
// address):
//
//	client, sent := connectortest.OfflineClient(http.StatusOK, `{"result":{}}`)
//	c, err := connectortest.TryBuildWith("sendgrid", "mailing", "api_key: k\n", connectors.Deps{HTTPClient: client})
//	…
//	if got := sent(); len(got) != 1 || got[0] != "POST https://api.sendgrid.com/…" { … }
func OfflineClient(status int, body string) (client *http.Client, sent func() []string) {
	var mu sync.Mutex
	var got []string
	client = &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r.Method+" "+r.URL.String())
		return &http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
	})}
	return client, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// CheckFindings compares what a discovery found with want, a place each
// mapped to "<status> <sampled>: <reason>", and with the number of places
// it read; no finding may name one of identifiers.
//
//	connectortest.CheckFindings(t, cov, 22, map[string]string{
//		"exports/{email}.csv": "covered 4: a path template names them",
//	}, "example.com")
func CheckFindings(t *testing.T, cov connectors.Coverage, places int64, want map[string]string, identifiers ...string) {
	t.Helper()
	got := map[string]string{}
	for _, f := range cov.Findings {
		got[f.Place] = fmt.Sprintf("%s %d: %s", f.Status, f.Sampled, f.Reason)
		for _, id := range identifiers {
			if strings.Contains(f.Place+f.Reason, id) {
				t.Errorf("a finding names an identifier: %+v", f)
			}
		}
	}
	for place, w := range want {
		if got[place] != w {
			t.Errorf("%s: %q, want %q", place, got[place], w)
		}
	}
	if len(got) != len(want) || cov.Places != places {
		t.Errorf("findings %v over %d places; want %d findings over %d places", got, cov.Places, len(want), places)
	}
}

// CallsCarry fails t for each request f received whose header is not
// want: two instances side by side each send their own credentials.
func CallsCarry(t *testing.T, f FaultyVendor, header, want string) {
	t.Helper()
	for _, call := range f.Calls() {
		if got := call.Header.Get(header); got != want {
			t.Errorf("%s %s carried %s %q, want %q", call.Method, call.Path, header, got, want)
		}
	}
}

// CallsTo are the calls f received of method ("" for any) to paths under
// prefix, in order.
func CallsTo(f FaultyVendor, method, prefix string) []fakevendor.Call {
	var out []fakevendor.Call
	for _, c := range f.Calls() {
		if (method == "" || c.Method == method) && strings.HasPrefix(c.Path, prefix) {
			out = append(out, c)
		}
	}
	return out
}
