package shopify_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
	"github.com/lethe-dev/lethe/connectors/shopify"
	"github.com/lethe-dev/lethe/connectors/shopify/shopifyfake"
)

var idKind = connectors.UserIDKind(shopifyfake.CustomerIDSystem)

func byID(id string) connectors.Subject {
	return connectors.Subject{UserIDs: map[string]string{shopifyfake.CustomerIDSystem: id}}
}

func TestVendor(t *testing.T) {
	t.Parallel()
	connectortest.RunVendor(t, connectortest.VendorSuite{
		VendorCases: connectortest.VendorCases{
			Type:  "shopify",
			Start: connectortest.StartFake(shopifyfake.Start),
			// The fake's throttle: 302 points asked, 102 left, 100 a second back.
			MinRetryAfter: 2 * time.Second, MaxRetryAfter: 2 * time.Second, Credential: "access_token", Forbidden: "read_customers",
		},
		Misconfigured: "base_url: {url}/not-a-shop", // 404s that must not pass for "no such customer"
		Hostile: []connectors.Subject{
			{Email: `subject600@example.com" OR email:"subject601@example.com`},
			{Email: "subject60*"}, {Email: "*@example.com"}, {Email: "example.com"},
			byID("7000000001 OR 7000000002"), byID("gid://shopify/Customer/7000000001/../7000000002"), byID("0"),
		},
		ResolvesIn: func(f connectortest.FaultyVendor, s connectors.Subject) map[connectors.Kind][]string {
			return map[connectors.Kind][]string{idKind: f.(*shopifyfake.Fake).CustomerIDs(s.Email)}
		},
	})
}

func TestResolveCases(t *testing.T) {
	t.Parallel()
	connectortest.RunResolveCases(t, connectortest.ResolveCases{
		Start: connectortest.StartFake(shopifyfake.Start),
		New: func(t *testing.T, f connectortest.FaultyVendor) connectors.Resolver {
			return connectortest.Build(t, "shopify", "shop", f.Config()).(connectors.Resolver)
		},
		TooManyAfter: 2 * time.Second,
		Faults: []connectortest.ResolveFault{
			{Name: "throttled_429", Fault: func(w http.ResponseWriter, _ *http.Request) {
				fakevendor.JSON(w, http.StatusTooManyRequests, map[string]any{"errors": []any{map[string]any{"message": "Throttled"}},
					"extensions": map[string]any{"cost": map[string]any{"requestedQueryCost": 60,
						"throttleStatus": map[string]any{"currentlyAvailable": 0, "restoreRate": 20}}}})
			}, After: 3 * time.Second},
			{Name: "access_denied", Fault: graphQLError("ACCESS_DENIED"), Permanent: true},
			{Name: "internal_error", Fault: graphQLError("INTERNAL_SERVER_ERROR")},
		},
		NobodyEvidence: "lookup=0 customers found by email; ",
		Hostile:        []string{`subject600@example.com" OR email:"subject601@example.com`, `subject600@example.com\`},
		Unsent:         []string{`subject600@example.com" OR email:"subject601@example.com`, `subject600@example.com\`, "subject600@example.com email:x"},
	})
}

func graphQLError(code string) fakevendor.Fault {
	return func(w http.ResponseWriter, _ *http.Request) {
		fakevendor.JSON(w, http.StatusOK, map[string]any{"errors": []any{map[string]any{"message": "no", "extensions": map[string]any{"code": code}}}})
	}
}

// TestErasureWaitsForShopify: the request is only acknowledged; the
// customer is still there until Shopify erases it, and a fresh instance
// polls the stored reference to the end.
func TestErasureWaitsForShopify(t *testing.T) {
	t.Parallel()
	f := shopifyfake.Start(t, shopifyfake.Options{Polls: 3})
	s, bystander := connectortest.VendorSubject(1), connectortest.VendorSubject(2)
	id := f.Add(s.Email)
	f.Seed(bystander)
	out, err := connectortest.Build(t, "shopify", "shop", f.Config()).Erase(connectortest.Ctx(t), s)
	if err != nil || out.Status != connectors.StatusRunning || out.PollAfter != 10*time.Millisecond {
		t.Fatalf("Erase = %+v, %v; want running, polled after 10ms", out, err)
	}
	if ev := connectortest.EvidenceText(out.Evidence); !strings.Contains(ev, "acknowledged") || strings.Contains(ev, id) {
		t.Errorf("evidence %q must say acknowledged and name no customer id", ev)
	}
	if !f.Pending(id) || f.Count(s) != 1 {
		t.Fatalf("after the request: pending %v, %d left; want pending and still held", f.Pending(id), f.Count(s))
	}
	out, states := connectortest.PollToEnd(t, connectortest.Build(t, "shopify", "other", f.Config()), out, 5)
	want := "lookup=1 of 1 customer awaiting Shopify's erasure; |lookup=1 of 1 customer awaiting Shopify's erasure; |lookup=1 of 1 customer awaiting Shopify's erasure; |" +
		"lookup=1 customer no longer found by id: erased by Shopify (Shopify documents that it keeps their orders, redacted; not checked); "
	if got := strings.Join(states, "|"); got != want || out.Status != connectors.StatusErased || out.Records != 1 {
		t.Errorf("polls %q ending %q with %d; want %q, erased 1", got, out.Status, out.Records, want)
	}
	if f.Count(s) != 0 || f.Count(bystander) != 1 {
		t.Errorf("left %d of the subject, %d of the bystander; want 0 and 1", f.Count(s), f.Count(bystander))
	}
}

// TestEraseByCustomerID: a subject known only by a Shopify customer id,
// bare or as a gid, is looked up and erased by it; a malformed id is
// refused before any request.
func TestEraseByCustomerID(t *testing.T) {
	t.Parallel()
	f := shopifyfake.Start(t, shopifyfake.Options{Polls: -1})
	c := connectortest.Build(t, "shopify", "shop", f.Config())
	for _, form := range []string{"%s", "gid://shopify/Customer/%s"} {
		id, other := f.Add("a@example.com"), f.Add("b@example.com")
		out, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, byID(fmt.Sprintf(form, id)), 5*time.Second)
		if err != nil || out.Status != connectors.StatusErased || f.Count(byID(id)) != 0 || f.Count(byID(other)) != 1 {
			t.Fatalf("%s: %q, %v; left %d, bystander %d", form, out.Status, err, f.Count(byID(id)), f.Count(byID(other)))
		}
	}
	connectortest.RefusedUnsent(t, c, byID("user-1"), "not a Shopify customer id", f.Requests)
	connectortest.RefusedUnsent(t, c, connectors.Subject{Phone: "+447700900123"}, "neither an email nor", f.Requests)
}

// TestSearchResultsAreFilteredExactly: whatever the search answers, only
// a customer whose address is the subject's is erased.
func TestSearchResultsAreFilteredExactly(t *testing.T) {
	t.Parallel()
	f := shopifyfake.Start(t, shopifyfake.Options{})
	other := f.Add("ann.other@example.com")
	f.Inject(1, func(w http.ResponseWriter, _ *http.Request) {
		fakevendor.JSON(w, http.StatusOK, map[string]any{"data": map[string]any{"customers": map[string]any{"nodes": []any{
			map[string]any{"id": "gid://shopify/Customer/" + other, "defaultEmailAddress": map[string]any{"emailAddress": "ann.other@example.com"}}}}}})
	})
	out, err := connectortest.Build(t, "shopify", "shop", f.Config()).Erase(connectortest.Ctx(t), connectors.Subject{Email: "ann@example.com"})
	if err != nil || out.Status != connectors.StatusNotFound || f.Pending(other) {
		t.Fatalf("Erase = %q, %v, other pending %v; want not found, the other customer untouched", out.Status, err, f.Pending(other))
	}
}

// TestUserErrors: a refused request is retried (nothing requested); a
// customer gone between the look-up and the request is not found.
func TestUserErrors(t *testing.T) {
	t.Parallel()
	f := shopifyfake.Start(t, shopifyfake.Options{})
	s := connectortest.VendorSubject(3)
	id := f.Add(s.Email)
	c := connectortest.Build(t, "shopify", "shop", f.Config())
	f.RefuseErasures("FAILED_TO_REQUEST")
	_, err := c.Erase(connectortest.Ctx(t), s)
	if perm, _ := connectors.Classify(err); err == nil || perm || !strings.Contains(err.Error(), "FAILED_TO_REQUEST") || f.Pending(id) {
		t.Fatalf("a refused request: %v, pending %v; want a retryable error naming the code", err, f.Pending(id))
	}
	f.RefuseErasures("")
	f.Inject(1, f.PassThrough())
	f.Inject(1, func(w http.ResponseWriter, _ *http.Request) {
		fakevendor.JSON(w, http.StatusOK, map[string]any{"data": map[string]any{"customerRequestDataErasure": map[string]any{"customerId": nil,
			"userErrors": []any{map[string]any{"field": []string{"customerId"}, "message": "Customer does not exist.", "code": "DOES_NOT_EXIST"}}}}})
	})
	if out, err := c.Erase(connectortest.Ctx(t), s); err != nil || out.Status != connectors.StatusNotFound {
		t.Fatalf("a customer gone before the request: %q, %v; want not found", out.Status, err)
	}
}

// TestCancelledErasure: a cancelled erasure leaves the customer in place;
// polls keep waiting, and past MaxWait the task fails for staff.
func TestCancelledErasure(t *testing.T) {
	t.Parallel()
	f := shopifyfake.Start(t, shopifyfake.Options{Polls: 1})
	s := connectortest.VendorSubject(4)
	id := f.Add(s.Email)
	c := connectortest.Build(t, "shopify", "shop", f.Config()).(connectors.Poller)
	out, err := c.(connectors.Connector).Erase(connectortest.Ctx(t), s)
	if err != nil || !f.Pending(id) {
		t.Fatal(out, err)
	}
	body, _ := json.Marshal(map[string]any{"query": `mutation($id: ID!) { customerCancelDataErasure(customerId: $id) { customerId userErrors { code } } }`,
		"variables": map[string]string{"id": "gid://shopify/Customer/" + id}})
	req, _ := http.NewRequest(http.MethodPost, f.URL()+"/admin/api/2026-10/graphql.json", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Shopify-Access-Token", shopifyfake.DefaultToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK || f.Pending(id) {
		t.Fatalf("cancel: %v, pending %v", err, f.Pending(id))
	}
	for range 3 {
		if out, err = c.Poll(connectortest.Ctx(t), out.JobRef); err != nil || out.Status != connectors.StatusRunning {
			t.Fatalf("Poll after a cancel = %q, %v; want still running", out.Status, err)
		}
	}
	old := fmt.Sprintf(`{"ids":[%q],"at":%d}`, id, time.Now().Add(-shopify.MaxWait-time.Hour).Unix())
	_, err = c.Poll(connectortest.Ctx(t), old)
	if !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "cancelled") || strings.Contains(err.Error(), id) {
		t.Errorf("Poll past MaxWait = %v; want a permanent error about a cancelled erasure, naming no id", err)
	}
}

func TestPollRefusesForeignRefs(t *testing.T) {
	t.Parallel()
	f := shopifyfake.Start(t, shopifyfake.Options{})
	c := connectortest.Build(t, "shopify", "shop", f.Config()).(connectors.Poller)
	for _, ref := range []string{"", `{"ids":[],"at":1}`, `{"ids":["12"]}`, `{"ids":["1/../2"],"at":1}`,
		`{"ids":["gid://shopify/Customer/12"],"at":1}`, `{"ids":[12],"at":1}`, "contacts-delete:1"} {
		if _, err := c.Poll(connectortest.Ctx(t), ref); !connectortest.IsPermanent(err) {
			t.Errorf("Poll(%q) = %v, want a permanent error", ref, err)
		}
	}
	if f.Requests() != 0 {
		t.Errorf("%d requests sent for foreign refs", f.Requests())
	}
}

// TestThrottleDelays: the wait is what the bucket needs to refill, or the
// Retry-After a 429 names; either is a "too many requests"
// (connectors.ErrRateLimited), so the runtime spaces the instance's calls
// wider.
func TestThrottleDelays(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault fakevendor.Fault
		want  time.Duration
	}{
		{"bucket", shopifyfake.Throttled(52, 2, 10), 5 * time.Second},
		{"almost full", shopifyfake.Throttled(12, 11, 100), time.Second},
		{"REST 429", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "2.0")
			fakevendor.JSON(w, http.StatusTooManyRequests, map[string]string{"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."})
		}, 2 * time.Second},
	} {
		f := shopifyfake.Start(t, shopifyfake.Options{})
		f.Inject(1, tc.fault)
		_, err := connectortest.Build(t, "shopify", "shop", f.Config()).Erase(connectortest.Ctx(t), connectortest.VendorSubject(5))
		if perm, after := connectors.Classify(err); err == nil || perm || after != tc.want {
			t.Errorf("%s: %v (permanent %v, after %v); want retryable after %v", tc.name, err, perm, after, tc.want)
		}
		if !errors.Is(err, connectors.ErrRateLimited) {
			t.Errorf("%s: %v is not marked as rate limited", tc.name, err)
		}
	}
}

// TestRequestsFollowTheDocumentedContract: the token header, the
// versioned endpoint, variables (never the address in the query text).
func TestRequestsFollowTheDocumentedContract(t *testing.T) {
	t.Parallel()
	f := shopifyfake.Start(t, shopifyfake.Options{Polls: -1})
	s := connectors.Subject{Email: "Mixed.Case@Example.com"}
	id := f.Add("mixed.case@example.com")
	if out, err := connectortest.EraseAndWait(connectortest.Ctx(t), connectortest.Build(t, "shopify", "shop", f.Config()), s, 5*time.Second); err != nil || out.Records != 1 {
		t.Fatalf("Erase = %+v, %v", out, err)
	}
	connectortest.CallsCarry(t, f, "X-Shopify-Access-Token", shopifyfake.DefaultToken)
	var vars []string
	for _, call := range f.Calls() {
		var body struct {
			Query     string
			Variables map[string]string
		}
		if call.Method != http.MethodPost || call.Path != "/admin/api/"+shopify.DefaultAPIVersion+"/graphql.json" || json.Unmarshal(call.Body, &body) != nil {
			t.Errorf("unexpected request %s %s %s", call.Method, call.Path, call.Body)
		}
		if strings.Contains(strings.ToLower(body.Query), "example.com") {
			t.Errorf("the address is in the query text: %s", body.Query)
		}
		vars = append(vars, fmt.Sprint(body.Variables))
	}
	gid := "gid://shopify/Customer/" + id
	if want := fmt.Sprint([]string{`map[q:email:"Mixed.Case@Example.com"]`, "map[id:" + gid + "]", "map[id:" + gid + "]"}); fmt.Sprint(vars) != want {
		t.Errorf("variables %v, want %v", vars, want)
	}

	client, sent := connectortest.OfflineClient(http.StatusOK, `{"data":{"customers":{"nodes":[]}}}`)
	c := connectortest.BuildWith(t, "shopify", "shop", "shop: Acme.myshopify.com\naccess_token: k\n", connectors.Deps{HTTPClient: client})
	if _, err := c.Erase(connectortest.Ctx(t), s); err != nil {
		t.Fatal(err)
	}
	if got := sent(); len(got) != 1 || got[0] != "POST https://acme.myshopify.com/admin/api/"+shopify.DefaultAPIVersion+"/graphql.json" {
		t.Errorf("requests = %q", got)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	connectortest.RunVendorConfigCases(t, "shopify", "access_token: k\nshop: acme\n", "base_url", "user_id_system", "poll_interval")
	connectortest.RunConfigCases(t, "shopify", nil, []string{"shpat_secret"}, connectortest.ConfigCases{
		{"no token", "shop: acme\n", "access_token: required"},
		{"no shop", "access_token: k\n", "shop: required"},
		{"both", "access_token: k\nshop: acme\nbase_url: https://acme.myshopify.com\n", "shop: set shop or base_url, not both"},
		{"bad shop", "access_token: k\nshop: acme.example.com\n", "shop: must be the store's myshopify.com subdomain"},
		{"base_url with /admin", "access_token: k\nbase_url: https://acme.myshopify.com/admin\n", "base_url: leave out /admin"},
		{"plain http", "access_token: k\nbase_url: http://acme.myshopify.com\n", "base_url: must use https"},
		{"bad version", "access_token: shpat_secret\nshop: acme\napi_version: 2026-11\n", "api_version: must be a Shopify API version"},
		{"too old", "access_token: k\nshop: acme\napi_version: 2024-10\n", "api_version: must be a Shopify API version from 2025-04 on"},
		{"ok", "access_token: k\nshop: acme\napi_version: 2025-04\nuser_id_system: shopify\npoll_interval: 12h\n", ""},
	})
	cfg := connectortest.Validated[shopify.Config](t, "access_token: k\nshop: Acme\n")
	if cfg.BaseURL != "https://acme.myshopify.com" || cfg.APIVersion != shopify.DefaultAPIVersion || cfg.PollInterval != 24*time.Hour {
		t.Errorf("defaults: %q, %q, %v", cfg.BaseURL, cfg.APIVersion, cfg.PollInterval)
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	connectortest.RunPlanCases(t, "shopify", connectortest.PlanCases{
		{Name: "default system", Instance: "shop", YAML: "access_token: {env: NEVER_SET}\nshop: acme\n",
			Keys: "[email|user_ids.shop]", Uses: "[email user_ids.shop]", ResolveBy: "[email]", Gives: "[user_ids.shop]"},
		{Name: "user_id_system", Instance: "shop", YAML: "access_token: {env: NEVER_SET}\nshop: acme\nuser_id_system: shopify\n",
			Keys: "[email|user_ids.shopify]", Uses: "[email user_ids.shopify]", ResolveBy: "[email]", Gives: "[user_ids.shopify]"},
	})
}
