// Package shopifyfake is a local Shopify GraphQL Admin API for tests:
// customer searches and look-ups, the customer data erasure that Shopify
// carries out days later (here: after a number of look-ups by id), its
// cost-based throttle answer and faults to inject.
package shopifyfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// DefaultToken is the Admin API access token a fake accepts.
const DefaultToken = "shpat_0123456789abcdef0123456789abcdef"

// CustomerIDSystem is the subject.user_ids key the fake's Config tells
// the connector to read Shopify customer ids from. (Not
// connectortest.UserIDSystem: Shopify issues these ids, the app does not.)
const CustomerIDSystem = "shopify"

// Options tunes a fake: its rate limit answers as Shopify's GraphQL API
// does (200 with a THROTTLED error and the bucket's state), and a
// customer whose erasure was requested is still found by Polls look-ups
// by id (default 2) before it is erased.
type Options = fakevendor.Options

// Fake is one store's GraphQL Admin API: X-Shopify-Access-Token auth;
// POST /admin/api/{version}/graphql.json with {"query","variables"}
// answering customers(first:, query: "email:…"), customer(id:),
// customerRequestDataErasure(customerId:) (userErrors DOES_NOT_EXIST, or
// a forced code) and customerCancelDataErasure(customerId:).
type Fake struct {
	fakevendor.Controls
	key       *fakevendor.Key
	polls     int
	userError *fakevendor.Setting[string]
	mu        sync.Mutex
	customers map[string]*customer // numeric id → customer
	nextID    int
}

type customer struct {
	email   string
	erasure *fakevendor.Job // nil: no erasure pending
}

// Start starts a fake that stops when the test ends.
func Start(t testing.TB, opt Options) *Fake {
	f := &Fake{key: fakevendor.NewKey(DefaultToken), userError: fakevendor.NewSetting(""), customers: map[string]*customer{}, nextID: 7000000001}
	srv := fakevendor.Start(t, opt, fakevendor.Vendor{TooMany: TooMany, Polls: 2, Auth: fakevendor.HeaderAuth("X-Shopify-Access-Token", f.key, Refused)})
	f.Controls, f.polls = srv.Controls(), srv.JobPolls
	srv.Handle("POST /admin/api/{version}/graphql.json", f.graphql)
	return f
}

// Refused is Shopify's answer to an access token it does not accept.
func Refused(w http.ResponseWriter, _ *http.Request) {
	fakevendor.JSON(w, http.StatusUnauthorized, map[string]string{"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"})
}

// TooMany is Shopify's throttled answer to a query costing 302 points
// with 102 left in a bucket refilling 100 a second: two seconds to wait.
var TooMany = Throttled(302, 102, 100)

// Throttled is Shopify's answer to a query the bucket cannot pay for:
// 200, a THROTTLED error and the bucket's state.
func Throttled(requested, available, restore float64) fakevendor.Fault {
	return func(w http.ResponseWriter, _ *http.Request) {
		fakevendor.JSON(w, http.StatusOK, map[string]any{
			"errors": []any{map[string]any{"message": "Throttled",
				"extensions": map[string]any{"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}},
			"extensions": cost(requested, nil, available, restore),
		})
	}
}

func cost(requested float64, actual any, available, restore float64) map[string]any {
	return map[string]any{"cost": map[string]any{"requestedQueryCost": requested, "actualQueryCost": actual,
		"throttleStatus": map[string]any{"maximumAvailable": 2000.0, "currentlyAvailable": available, "restoreRate": restore}}}
}

// Config is a shopify config against f, polling every 10ms.
func (f *Fake) Config() string {
	return fmt.Sprintf("access_token: %q\nbase_url: %q\nuser_id_system: %s\npoll_interval: 10ms\n", f.key.Get(), f.URL(), CustomerIDSystem)
}

// NoRecoverableState cites why an erased customer cannot come back.
func (f *Fake) NoRecoverableState() string {
	return "Shopify keeps no trash of customers: an erasure redacts the customer for good, and a customer awaiting erasure is still found, so it never passes as erased " +
		"(help.shopify.com, Processing customer data requests)"
}

// Seed stores a customer with the subject's email.
func (f *Fake) Seed(s connectors.Subject) int64 {
	f.Add(fakevendor.NeedEmail("shopifyfake: Seed", s))
	return 1
}

// Add stores a customer and returns its id (digits).
func (f *Fake) Add(email string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := strconv.Itoa(f.nextID)
	f.nextID++
	f.customers[id] = &customer{email: email}
	return id
}

// Count is how many customers hold the subject's email or its customer
// id, those awaiting erasure included.
func (f *Fake) Count(s connectors.Subject) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for id, c := range f.customers {
		if (s.Email != "" && strings.EqualFold(c.email, s.Email)) || id == s.UserIDs[CustomerIDSystem] {
			n++
		}
	}
	return n
}

// CustomerIDs are the ids of the customers holding email.
func (f *Fake) CustomerIDs(email string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id, c := range f.customers {
		if strings.EqualFold(c.email, email) {
			ids = append(ids, id)
		}
	}
	return ids
}

// Pending reports whether customer id awaits erasure.
func (f *Fake) Pending(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.customers[id]
	return c != nil && c.erasure != nil
}

// RefuseErasures makes customerRequestDataErasure answer a userError with
// code ("" : back to normal).
func (f *Fake) RefuseErasures(code string) { f.userError.Set(code) }

var gidRe = regexp.MustCompile(`^gid://shopify/Customer/([0-9]+)$`)

func (f *Fake) graphql(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Query     string
		Variables map[string]string
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || json.NewDecoder(r.Body).Decode(&req) != nil || req.Query == "" {
		fakevendor.JSON(w, http.StatusBadRequest, map[string]any{"errors": map[string]string{"query": "Required parameter missing or invalid"}})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var data map[string]any
	id := ""
	if m := gidRe.FindStringSubmatch(req.Variables["id"]); m != nil {
		id = m[1]
	}
	q := req.Query
	switch {
	case strings.Contains(q, "customerRequestDataErasure("), strings.Contains(q, "customerCancelDataErasure("):
		data = f.erasure(id, strings.Contains(q, "customerCancel"))
	case strings.Contains(q, "customers("):
		nodes := []any{}
		for _, cid := range f.search(req.Variables["q"]) {
			nodes = append(nodes, node(cid, f.customers[cid].email))
		}
		data = map[string]any{"customers": map[string]any{"nodes": nodes}}
	case strings.Contains(q, "customer(") && id == "":
		fakevendor.JSON(w, http.StatusOK, map[string]any{"errors": []any{map[string]any{"message": "Invalid global id",
			"extensions": map[string]any{"code": "argumentLiteralsIncompatible"}}}})
		return
	case strings.Contains(q, "customer("):
		data = map[string]any{"customer": nil}
		if c := f.customers[id]; c != nil && c.erasure != nil && c.erasure.Poll() {
			delete(f.customers, id) // Shopify's delay has passed: erased
		} else if c != nil {
			data["customer"] = node(id, c.email)
		}
	default:
		fakevendor.JSON(w, http.StatusOK, map[string]any{"errors": []any{map[string]any{"message": "Field doesn't exist",
			"extensions": map[string]any{"code": "undefinedField"}}}})
		return
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"data": data, "extensions": cost(12, 3, 1988, 100)})
}

func node(id, email string) map[string]any {
	return map[string]any{"id": "gid://shopify/Customer/" + id, "email": email, "defaultEmailAddress": map[string]any{"emailAddress": email}}
}

// erasure requests (or cancels) the erasure of customer id.
func (f *Fake) erasure(id string, cancel bool) map[string]any {
	field, c := "customerRequestDataErasure", f.customers[id]
	if cancel {
		field = "customerCancelDataErasure"
	}
	fail := func(code, msg string) map[string]any {
		return map[string]any{field: map[string]any{"customerId": nil,
			"userErrors": []any{map[string]any{"field": []string{"customerId"}, "message": msg, "code": code}}}}
	}
	switch {
	case c == nil:
		return fail("DOES_NOT_EXIST", "Customer does not exist.")
	case cancel && c.erasure == nil:
		return fail("NOT_BEING_ERASED", "Customer's data is not scheduled for erasure.")
	case cancel:
		c.erasure = nil
	case f.userError.Get() != "":
		return fail(f.userError.Get(), "Failed to request customer data erasure.")
	case c.erasure == nil:
		j := fakevendor.NewJob(f.polls)
		c.erasure = &j
	}
	return map[string]any{field: map[string]any{"customerId": "gid://shopify/Customer/" + id, "userErrors": []any{}}}
}

// search reads a search query as Shopify's syntax does: email:"…" or
// email:'…' (backslash escapes) is an exact, case-blind match, a bare
// email:value* a prefix; anything else matches every email holding the
// text, as a loose full-text search would.
func (f *Fake) search(q string) []string {
	match := func(e string) bool { return strings.Contains(strings.ToLower(e), strings.ToLower(q)) }
	if v, ok := strings.CutPrefix(q, "email:"); ok {
		switch {
		case len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0]:
			inner := v[1 : len(v)-1]
			if strings.ContainsRune(strings.ReplaceAll(inner, `\`+string(v[0]), ""), rune(v[0])) {
				return nil // an unescaped quote ends the value early: a parse error finds nothing
			}
			inner = strings.NewReplacer(`\\`, `\`, `\`+string(v[0]), string(v[0])).Replace(inner)
			match = func(e string) bool { return strings.EqualFold(e, inner) }
		case strings.HasSuffix(v, "*"):
			match = func(e string) bool {
				return strings.HasPrefix(strings.ToLower(e), strings.ToLower(strings.TrimSuffix(v, "*")))
			}
		case !strings.ContainsAny(v, " \t\"'():\\"):
			match = func(e string) bool { return strings.EqualFold(e, v) }
		}
	}
	var ids []string
	for id, c := range f.customers {
		if match(c.email) {
			ids = append(ids, id)
		}
	}
	return ids
}
