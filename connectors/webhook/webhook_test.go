package webhook

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
	"github.com/lethe-dev/lethe/connectors/webhook/opendsr"
	"github.com/lethe-dev/lethe/connectors/webhook/webhookfake"
)

const (
	testToken    = webhookfake.DefaultToken
	fakeInstance = "billing" // the connector instance the tests build
)

// billingConfig is the config of a connector pointed at p, reading user
// ids under the instance's name (the connector's default), with extra
// lines set.
func billingConfig(p *webhookfake.Fake, extra ...string) string {
	return p.ConfigWith(append([]string{"user_id_system:"}, extra...)...)
}

// created returns the create requests p received, decoded.
func created(t *testing.T, p *webhookfake.Fake) []opendsr.CreateRequest {
	t.Helper()
	var out []opendsr.CreateRequest
	for _, c := range p.Calls() {
		if c.Method == http.MethodPost && strings.HasSuffix(c.Path, "/requests") {
			var b opendsr.CreateRequest
			if err := json.Unmarshal(c.Body, &b); err != nil {
				t.Fatalf("create body: %v", err)
			}
			out = append(out, b)
		}
	}
	return out
}

func newConnector(t *testing.T, p *webhookfake.Fake, extra ...string) *connector {
	t.Helper()
	c, ok := connectortest.Build(t, "webhook", fakeInstance, billingConfig(p, extra...)).(*connector)
	if !ok {
		t.Fatal("webhook builds a *connector")
	}
	return c
}

// setup starts a fake processor tuned by opt and builds an instance
// against it, with extra config lines.
func setup(t *testing.T, opt webhookfake.Options, extra ...string) (*webhookfake.Fake, *connector) {
	t.Helper()
	p := webhookfake.Start(t, opt)
	return p, newConnector(t, p, extra...)
}

// eraseSeeded seeds s at p and erases it through c, polls included.
func eraseSeeded(t *testing.T, p *webhookfake.Fake, c *connector, s connectors.Subject) (connectors.Outcome, error) {
	t.Helper()
	p.Seed(s)
	return connectortest.EraseAndWait(connectortest.Ctx(t), c, s, 5*time.Second)
}

// TestVendor runs the conformance suite and the vendor cases against the
// fake processor.
func TestVendor(t *testing.T) {
	t.Parallel()
	connectortest.RunVendor(t, connectortest.VendorSuite{
		VendorCases: connectortest.VendorCases{
			Type:  "webhook",
			Start: connectortest.StartFake(webhookfake.Start),
			// The fake's 429 names Retry-After: 1 (OpenDSR defines none).
			MinRetryAfter: time.Second, MaxRetryAfter: time.Second, Credential: "token",
		},
		Misconfigured: "base_url: {url}/not-opendsr", // no OpenDSR endpoint behind it
		PollTimeout:   5 * time.Second,
	})
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	privDER, _ := x509MarshalPKCS8(priv)
	privFile := filepath.Join(dir, "private.pem")
	writePEM(t, privFile, "PRIVATE KEY", privDER)
	pubFile := filepath.Join(dir, "public.pem")
	writePEM(t, pubFile, "PUBLIC KEY", mustPKIX(t, priv.Public()))
	weakFile := filepath.Join(dir, "weak.pem")
	writePEM(t, weakFile, "PUBLIC KEY", mustPKIX(t, &weakRSAKey(t).PublicKey))

	// Want: a substring of the error; "" means valid. No error quotes the token.
	connectortest.RunVendorConfigCases(t, "webhook", "base_url: https://d.example.com\n", "user_id_system", "poll_interval")
	connectortest.RunConfigCases(t, "webhook", nil, []string{"abc"}, connectortest.ConfigCases{
		{"minimal", "base_url: https://dsr.example.com/opendsr", ""},
		{"full", `
base_url: https://dsr.example.com
token: abc
regulation: ccpa
identity_format: sha256
phone_type: phone_number
user_id_type: account_id
user_id_system: shop
callback_url: https://lethe.example.com/v1/connectors/billing/callback
processor_domain: dsr.example.com
processor_public_key: {file: ` + pubFile + `}
callback_max_age: 2m
body_only_signatures: true
poll_interval: 30m`, ""},
		{"callback window too long", "base_url: https://d.example.com\ncallback_max_age: 48h", "callback_max_age: at most 24h"},
		{"negative callback window", "base_url: https://d.example.com\ncallback_max_age: -1m", "callback_max_age:"},
		{"key as a plain path", "base_url: https://d.example.com\nprocessor_domain: d.example.com\nprocessor_public_key: " + pubFile, ""},
		{"no base_url", "regulation: gdpr", "base_url: required"},
		{"base_url not a URL", "base_url: dsr.example.com", "base_url: must be an http(s) URL"},
		{"base_url with credentials", "base_url: https://u:p@dsr.example.com", "base_url: must not carry credentials"},
		{"base_url with /requests", "base_url: https://dsr.example.com/requests", "base_url: leave out /requests"},
		{"bad regulation", "base_url: https://d.example.com\nregulation: lgpd", "regulation:"},
		{"weak hash", "base_url: https://d.example.com\nidentity_format: md5", "identity_format: md5"},
		{"unknown format", "base_url: https://d.example.com\nidentity_format: base64", "identity_format:"},
		{"bad user_id_type", "base_url: https://d.example.com\nuser_id_type: Customer-ID", "user_id_type:"},
		{"bad phone_type", "base_url: https://d.example.com\nphone_type: 'phone number'", "phone_type:"},
		{"callback without key", "base_url: https://d.example.com\ncallback_url: https://l.example.com/cb", "callback_url: needs processor_domain and processor_public_key"},
		{"bad callback_url", "base_url: https://d.example.com\ncallback_url: ftp://l.example.com\nprocessor_domain: d.example.com\nprocessor_public_key: " + pubFile, "callback_url: must be an http(s) URL"},
		{"domain without key", "base_url: https://d.example.com\nprocessor_domain: d.example.com", "processor_public_key: required"},
		{"key without domain", "base_url: https://d.example.com\nprocessor_public_key: " + pubFile, "processor_domain: required"},
		{"domain with scheme", "base_url: https://d.example.com\nprocessor_domain: https://d.example.com\nprocessor_public_key: " + pubFile, "processor_domain: must be a host name"},
		{"private key", "base_url: https://d.example.com\nprocessor_domain: d.example.com\nprocessor_public_key: " + privFile, "this is a private key"},
		{"missing key file", "base_url: https://d.example.com\nprocessor_domain: d.example.com\nprocessor_public_key: {file: " + filepath.Join(dir, "nope.pem") + "}", "processor_public_key:"},
		{"not PEM", "base_url: https://d.example.com\nprocessor_domain: d.example.com\nprocessor_public_key: '-----BEGIN nonsense'", "processor_public_key: no PEM block"},
		{"weak RSA key", "base_url: https://d.example.com\nprocessor_domain: d.example.com\nprocessor_public_key: " + weakFile, "at least 2048"},
		{"token from an empty env", "base_url: https://d.example.com\ntoken: {env: NOPE}", "token: environment variable NOPE"},
	})
}

func TestPollsJobToCompletion(t *testing.T) {
	t.Parallel()
	p, c := setup(t, webhookfake.Options{Polls: 2}, "poll_interval: 90m") // Running carries the configured interval
	s := connectors.Subject{Email: "ada@example.com"}
	p.Seed(s)
	out, err := c.Erase(connectortest.Ctx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != connectors.StatusRunning || !opendsr.IsRequestID(out.JobRef) || out.PollAfter != 90*time.Minute {
		t.Fatalf("Erase = %+v, want running with a UUID v4 job ref and poll after 90m", out)
	}
	if ev := evidence(out); ev["subject_request_id"] != out.JobRef || ev["expected_completion_time"] == "" || ev["received_time"] == "" {
		t.Errorf("Erase evidence = %v", out.Evidence)
	}
	if ev := evidence(out); ev["processor_signature"] != "verified" {
		t.Errorf("receipt signature = %q, want verified", ev["processor_signature"])
	}
	var statuses []connectors.Status
	for range 3 {
		// A fresh connector each time: the job ref alone must be enough.
		out, err = newConnector(t, p).Poll(connectortest.Ctx(t), out.JobRef)
		if err != nil {
			t.Fatal(err)
		}
		statuses = append(statuses, out.Status)
	}
	want := []connectors.Status{connectors.StatusRunning, connectors.StatusRunning, connectors.StatusErased}
	if !slices.Equal(statuses, want) {
		t.Fatalf("poll statuses = %v, want %v", statuses, want)
	}
	if out.Records != webhookfake.Records {
		t.Errorf("records = %d, want %d", out.Records, webhookfake.Records)
	}
	ev := evidence(out)
	if ev["request_status"] != "completed" || ev["records"] != "3" || !opendsr.IsRequestID(ev["subject_request_id"]) {
		t.Errorf("final evidence = %v", out.Evidence)
	}
	if n := p.Count(s); n != 0 {
		t.Errorf("%d records left", n)
	}
}

func TestCancelledRequestIsPermanent(t *testing.T) {
	t.Parallel()
	p, c := setup(t, webhookfake.Options{})
	p.CancelAll()
	s := connectors.Subject{Email: "bob@example.com"}
	_, err := eraseSeeded(t, p, c, s)
	if err == nil {
		t.Fatal("a cancelled request was reported as success")
	}
	if perm, _ := connectors.Classify(err); !perm || !strings.Contains(err.Error(), "the processor cancelled the request") {
		t.Errorf("err = %v, want permanent 'the processor cancelled the request'", err)
	}
	if strings.Contains(err.Error(), s.Email) {
		t.Errorf("error quotes the subject: %v", err)
	}
	if p.Count(s) != webhookfake.Records {
		t.Error("a cancelled request erased data")
	}
}

func TestCancelledThroughDeleteEndpoint(t *testing.T) {
	t.Parallel()
	// DELETE /requests/{id} is OpenDSR's cancel: a request someone
	// cancels at the processor ends the task with a permanent error.
	p, c := setup(t, webhookfake.Options{})
	out, err := c.Erase(connectortest.Ctx(t), connectors.Subject{Email: "carol@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodDelete, p.URL()+"/requests/"+out.JobRef, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE = %d", resp.StatusCode)
	}
	_, err = c.Poll(connectortest.Ctx(t), out.JobRef)
	if perm, _ := connectors.Classify(err); err == nil || !perm {
		t.Fatalf("Poll of a cancelled request = %v, want permanent", err)
	}
}

func TestPollErrors(t *testing.T) {
	t.Parallel()
	p, c := setup(t, webhookfake.Options{})
	// Unknown to the processor: 404, permanent.
	_, err := c.Poll(connectortest.Ctx(t), "6f1c1a3e-3c5d-4b8e-9a0f-2d7c5b9e8a11")
	if perm, _ := connectors.Classify(err); err == nil || !perm || !strings.Contains(err.Error(), "does not know request") {
		t.Errorf("Poll of an unknown request = %v, want permanent", err)
	}
	// A job ref that is not a UUID never reaches the processor.
	before := len(p.Calls())
	for _, ref := range []string{"", "../discovery", "6f1c1a3e-3c5d-4b8e-9a0f-2d7c5b9e8a11/../x", "{6f1c1a3e-3c5d-4b8e-9a0f-2d7c5b9e8a11}"} {
		if _, err := c.Poll(connectortest.Ctx(t), ref); err == nil {
			t.Errorf("Poll(%q) succeeded", ref)
		} else if perm, _ := connectors.Classify(err); !perm {
			t.Errorf("Poll(%q) = %v, want permanent", ref, err)
		}
	}
	if n := len(p.Calls()) - before; n != 0 {
		t.Errorf("bad job refs reached the processor %d times", n)
	}
}

func TestUnknownStatusIsRetryable(t *testing.T) {
	t.Parallel()
	p, c := setup(t, webhookfake.Options{})
	s := connectors.Subject{Email: "dan@example.com"}
	out, err := c.Erase(connectortest.Ctx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	// Bodies that are not JSON at all are vendor cases; a status that is
	// JSON but not OpenDSR is the processor's own.
	p.Inject(1, func(w http.ResponseWriter, r *http.Request) {
		fakevendor.JSON(w, http.StatusOK, map[string]any{"request_status": "exploded"})
	})
	_, err = c.Poll(connectortest.Ctx(t), out.JobRef)
	if perm, _ := connectors.Classify(err); err == nil || perm || strings.Contains(err.Error(), "exploded") {
		t.Fatalf("unknown status = %v, want retryable without quoting it", err)
	}
}

func TestRateLimitIsTheFakesOwn(t *testing.T) {
	t.Parallel()
	p, c := setup(t, webhookfake.Options{RateLimit: 1, Burst: 1})
	var limited error
	for range 3 {
		if _, err := c.Erase(connectortest.Ctx(t), connectors.Subject{Email: "frank@example.com"}); err != nil {
			limited = err
		}
	}
	if _, after := connectors.Classify(limited); limited == nil || after != time.Second || p.Limited() == 0 {
		t.Fatalf("three requests at once against 1/s: err %v after %v, limited %d", limited, after, p.Limited())
	}
}

func TestServerErrorHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	p, c := setup(t, webhookfake.Options{})
	s := connectors.Subject{Email: "gina@example.com"}
	p.Inject(1, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		fakevendor.JSON(w, http.StatusBadGateway, map[string]any{})
	})
	_, err := c.Erase(connectortest.Ctx(t), s)
	if perm, after := connectors.Classify(err); err == nil || perm || after != 7*time.Second {
		t.Fatalf("502 = %v, want retryable after 7s", err)
	}
	// A timeout is a vendor case.
}

func TestRefusedRequestIsPermanent(t *testing.T) {
	t.Parallel()
	p, c := setup(t, webhookfake.Options{})
	p.Inject(1, func(w http.ResponseWriter, r *http.Request) {
		webhookfake.WriteError(w, http.StatusBadRequest, "unsupported identity for ada@example.com")
	})
	_, err := c.Erase(connectortest.Ctx(t), connectors.Subject{Email: "ada@example.com"})
	if perm, _ := connectors.Classify(err); err == nil || !perm {
		t.Fatalf("400 = %v, want permanent", err)
	}
	if strings.Contains(err.Error(), "ada@") {
		t.Errorf("error quotes the processor's body: %v", err)
	}
}

func TestRequestMatchesContract(t *testing.T) {
	t.Parallel()
	const cb = "https://lethe.example.com/v1/connectors/billing/callback"
	p, c := setup(t, webhookfake.Options{}, "callback_url: "+cb)
	c.base = p.URL() + "/opendsr" // as if base_url had a path
	s := connectors.Subject{Email: "hal@example.com", Phone: "+447700900123", UserIDs: map[string]string{fakeInstance: "cus_42", "other": "x9"}}
	out, err := c.Erase(connectortest.Ctx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Poll(connectortest.Ctx(t), out.JobRef); err != nil {
		t.Fatal(err)
	}
	calls := p.Calls()
	if len(calls) != 2 {
		t.Fatalf("%d calls, want create and status", len(calls))
	}
	create, status := calls[0], calls[1]
	if create.Method != http.MethodPost || create.Path != "/opendsr/requests" || create.Status != http.StatusCreated {
		t.Errorf("create = %s %s → %d", create.Method, create.Path, create.Status)
	}
	if status.Method != http.MethodGet || status.Path != "/opendsr/requests/"+out.JobRef || len(status.Body) != 0 || status.Status != http.StatusOK {
		t.Errorf("status = %s %s → %d", status.Method, status.Path, status.Status)
	}
	for _, call := range calls {
		if call.Header.Get("Authorization") != "Bearer "+testToken || call.Header.Get("Accept") != "application/json" {
			t.Errorf("%s headers: Authorization %q, Accept %q", call.Method, call.Header.Get("Authorization"), call.Header.Get("Accept"))
		}
	}
	if ct := create.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(create.Body, &fields); err != nil {
		t.Fatal(err)
	}
	keys := []string{}
	for k := range fields {
		keys = append(keys, k)
	}
	if len(keys) != 7 {
		t.Errorf("body keys = %v, want the 7 of OpenDSR", keys)
	}
	b := created(t, p)[0]
	if b.SubjectRequestID != out.JobRef || b.SubjectRequestType != "erasure" || b.Regulation != "gdpr" || b.APIVersion != "2.0" {
		t.Errorf("body = %+v", b)
	}
	if at, err := time.Parse(time.RFC3339, b.SubmittedTime); err != nil || time.Since(at) > time.Minute {
		t.Errorf("submitted_time = %q", b.SubmittedTime)
	}
	if len(b.StatusCallbackURLs) != 1 || b.StatusCallbackURLs[0] != cb {
		t.Errorf("status_callback_urls = %v", b.StatusCallbackURLs)
	}
	want := []opendsr.Identity{
		{Type: "email", Value: "hal@example.com", Format: "raw"},
		{Type: "phone", Value: "+447700900123", Format: "raw"},
		{Type: "controller_customer_id", Value: "cus_42", Format: "raw"},
	}
	if !slices.Equal(b.SubjectIdentities, want) {
		t.Errorf("subject_identities = %+v, want %+v", b.SubjectIdentities, want)
	}
}

func TestNoCallbackURLSendsEmptyList(t *testing.T) {
	t.Parallel()
	p, c := setup(t, webhookfake.Options{})
	if _, err := c.Erase(connectortest.Ctx(t), connectors.Subject{Email: "ian@example.com"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(p.Calls()[0].Body), `"status_callback_urls":[]`) {
		t.Errorf("body = %s", p.Calls()[0].Body)
	}
}

func TestSHA256Identities(t *testing.T) {
	t.Parallel()
	p, c := setup(t, webhookfake.Options{}, "identity_format: sha256", "regulation: ccpa")
	s := connectors.Subject{Email: "jo@example.com", Phone: "+33612345678"}
	out, err := eraseSeeded(t, p, c, s)
	if err != nil || out.Status != connectors.StatusErased || out.Records != webhookfake.Records {
		t.Fatalf("hashed erase = %+v, %v", out, err)
	}
	body := string(p.Calls()[0].Body)
	if strings.Contains(body, "jo@example.com") || strings.Contains(body, "612345678") {
		t.Errorf("raw identifiers sent with identity_format sha256: %s", body)
	}
	b := created(t, p)[0]
	if b.Regulation != "ccpa" {
		t.Errorf("regulation = %q", b.Regulation)
	}
	types := []string{"email", "phone"}
	if len(b.SubjectIdentities) != len(types) {
		t.Fatalf("identities = %+v", b.SubjectIdentities)
	}
	for i, id := range b.SubjectIdentities {
		v := s.Email
		if i == 1 {
			v = s.Phone
		}
		if id.Type != types[i] || id.Format != "sha256" || id.Value != opendsr.SHA256(v) {
			t.Errorf("identity %d = %+v, want %s of the normalised value", i, id, types[i])
		}
	}
}

// Plain OpenDSR reports a request completed without a count: the
// erasure is uncounted, never an invented 1.
func TestCompletedWithoutTheExtensionIsUncounted(t *testing.T) {
	t.Parallel()
	p, c := setup(t, webhookfake.Options{})
	p.OmitRecords()
	s := connectors.Subject{Email: "kim@example.com"}
	out, err := eraseSeeded(t, p, c, s)
	if err != nil || out.Status != connectors.StatusErased || !out.Uncounted || out.Records != 0 {
		t.Fatalf("completed without records = %+v, %v; want erased, uncounted", out, err)
	}
	if !strings.Contains(connectortest.EvidenceText(out.Evidence), "records=not reported;") {
		t.Errorf("evidence = %v", out.Evidence)
	}
	if p.Count(s) != 0 {
		t.Error("the processor kept the records")
	}
}

// The plan makes the runtime wait for an identity; a subject with none the
// processor is sent (the instance's keys were changed) is refused, never
// "not found": nothing was searched.
func TestSubjectWithoutUsableIdentifiersIsRefused(t *testing.T) {
	t.Parallel()
	p, c := setup(t, webhookfake.Options{})
	out, err := c.Erase(connectortest.Ctx(t), connectors.Subject{UserIDs: map[string]string{"shop": "42"}})
	if perm, _ := connectors.Classify(err); err == nil || !perm || !strings.Contains(err.Error(), "no email, phone or billing user id") {
		t.Fatalf("= %+v, %v; want a permanent error", out, err)
	}
	if len(p.Calls()) != 0 {
		t.Error("an empty request reached the processor")
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	connectortest.RunPlanCases(t, "webhook", connectortest.PlanCases{
		{Name: "user id under the instance name", Instance: "billing", YAML: "base_url: https://dsr.example.com\n",
			Keys: "[email|phone|user_ids.billing]", Uses: "[email phone user_ids.billing]"},
		{Name: "user_id_system", Instance: "billing", YAML: "base_url: https://dsr.example.com\nuser_id_system: shop\ntoken: {env: WEBHOOK_NEVER_READ}\n",
			Keys: "[email|phone|user_ids.shop]", Uses: "[email phone user_ids.shop]"},
	})
}

func TestReceiptSignatureFromAnotherKey(t *testing.T) {
	t.Parallel()
	_, c := setup(t, webhookfake.Options{})
	_, other := setup(t, webhookfake.Options{}) // same contract, another key
	c.keys = other.keys
	out, err := c.Erase(connectortest.Ctx(t), connectors.Subject{Email: "lee@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if got := evidence(out)["processor_signature"]; got != "did not verify with processor_public_key" {
		t.Errorf("receipt = %q", got)
	}
}

// TestTokenFromFile: an instance reads its processor's token from a file.
// (Two instances side by side, each at its own processor, are a vendor
// case.)
func TestTokenFromFile(t *testing.T) {
	t.Parallel()
	p := webhookfake.Start(t, webhookfake.Options{})
	p.SetToken("token-us")
	tokenFile := filepath.Join(t.TempDir(), "us-token")
	if err := os.WriteFile(tokenFile, []byte("token-us\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := connectortest.Build(t, "webhook", "billing-us", billingConfig(p, "token: {file: "+tokenFile+"}"))
	s := connectors.Subject{Email: "ned@example.com"}
	p.Seed(s)
	if _, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, s, 5*time.Second); err != nil || p.Count(s) != 0 {
		t.Fatalf("EraseAndWait: %v, %d left", err, p.Count(s))
	}
	connectortest.CallsCarry(t, p, "Authorization", "Bearer token-us")
}

func TestCancelledContextSendsNothing(t *testing.T) {
	t.Parallel()
	p, c := setup(t, webhookfake.Options{})
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Erase(cctx, connectors.Subject{Email: "ola@example.com"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if len(p.Calls()) != 0 {
		t.Error("a request was sent with a cancelled context")
	}
}

func evidence(out connectors.Outcome) map[string]string {
	m := map[string]string{}
	for _, e := range out.Evidence {
		m[e.Kind] = e.Value
	}
	return m
}
