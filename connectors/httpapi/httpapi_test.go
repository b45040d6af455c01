package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

const minimal = "vendor: Acme\nbase_url: https://api.acme.example\nauth:\n  bearer: t\n" +
	"delete:\n  request: {method: DELETE, path: '/v1/people/{email}'}\n"

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	connectortest.RunVendorConfigCases(t, "http", minimal)
	const auth = "vendor: Acme\nbase_url: https://api.acme.example\nauth:\n  bearer: t\n"
	lookup := func(extra string) string {
		return auth + "lookups:\n  - name: person\n    request: {method: GET, path: /v1/people, query: {email: '{email}'}}\n    id: id\n" + extra +
			"delete:\n  request: {method: DELETE, path: '/v1/people/{id}'}\n"
	}
	connectortest.RunConfigCases(t, "http", nil, []string{"s3cr3t"}, connectortest.ConfigCases{
		{"no vendor", strings.Replace(minimal, "vendor: Acme\n", "", 1), "vendor: required"},
		{"no base_url", strings.Replace(minimal, "base_url: https://api.acme.example\n", "", 1), "base_url: required"},
		{"no auth", strings.Replace(minimal, "auth:\n  bearer: t\n", "", 1), "auth: name exactly one"},
		{"bearer and basic", strings.Replace(minimal, "  bearer: t\n", "  bearer: t\n  basic: {username: u, password: p}\n", 1), "auth: name exactly one"},
		{"basic without user", strings.Replace(minimal, "  bearer: t\n", "  basic: {password: s3cr3t}\n", 1), "auth.basic.username: required"},
		{"header without name", strings.Replace(minimal, "  bearer: t\n", "  header: {value: s3cr3t}\n", 1), "auth.header.name: required"},
		{"query bad name", strings.Replace(minimal, "  bearer: t\n", "  query: {name: 'a b', value: s3cr3t}\n", 1), "auth.query.name"},
		{"oauth2 plain http", strings.Replace(minimal, "  bearer: t\n", "  oauth2: {token_url: 'http://auth.acme.example/token', client_id: c, client_secret: s3cr3t}\n", 1), "auth.oauth2.token_url: must use https"},
		{"oauth2 no client", strings.Replace(minimal, "  bearer: t\n", "  oauth2: {token_url: 'https://auth.acme.example/token', client_secret: s3cr3t}\n", 1), "auth.oauth2.client_id: required"},
		{"bearer from empty env", strings.Replace(minimal, "bearer: t", "bearer: {env: LETHE_TEST_UNSET_HTTP}", 1), "auth.bearer: environment variable LETHE_TEST_UNSET_HTTP"},
		{"no delete", auth, "delete: required"},
		{"bad method", strings.Replace(minimal, "DELETE", "PURGE", 1), "delete.request.method: must be one of"},
		{"relative path", strings.Replace(minimal, "'/v1/people/{email}'", "'v1/people/{email}'", 1), "delete.request.path: required: a path beginning with '/'"},
		{"query in path", strings.Replace(minimal, "'/v1/people/{email}'", "'/v1/people?e={email}'", 1), "delete.request.path: must be a path only"},
		{"unknown placeholder", strings.Replace(minimal, "{email}", "{emial}", 1), "delete.request.path: {emial} is not a placeholder"},
		{"unclosed brace", strings.Replace(minimal, "{email}", "{email", 1), "is not closed"},
		{"delete by nothing", strings.Replace(minimal, "/{email}", "/all", 1), "delete.request: without lookups, the request must name the person's identifiers"},
		{"id without lookups", strings.Replace(minimal, "{email}", "{id}", 1), "delete.request: {id} and {ids} are the ids lookups find"},
		{"job in delete", strings.Replace(minimal, "{email}", "{email}/{job}", 1), "delete.request: {job} is only known while reading"},
		{"body on a GET", strings.Replace(minimal, "{method: DELETE, path: '/v1/people/{email}'}", "{method: GET, path: '/v1/people/{email}', json: {a: b}}", 1), "delete.request: a GET sends no body"},
		{"json and form", strings.Replace(minimal, "path: '/v1/people/{email}'}", "path: '/v1/people/{email}', json: {a: b}, form: {c: d}}", 1), "json and form are two bodies"},
		{"unknown placeholder in json", strings.Replace(minimal, "path: '/v1/people/{email}'}", "path: '/v1/people/{email}', json: {who: ['{mail}']}}", 1), "delete.request.json.who[0]: {mail} is not a placeholder"},
		{"authorization header", strings.Replace(minimal, "path: '/v1/people/{email}'}", "path: '/v1/people/{email}', headers: {Authorization: x}}", 1), "delete.request.headers.Authorization: not a header"},
		{"undeclared secret", strings.Replace(minimal, "{email}'", "{email}', query: {token: '{secrets.project}'}", 1), "secrets: {secrets.project} is used but secrets.project is not set"},
		{"unused secret", minimal + "secrets:\n  extra: s3cr3t\n", "secrets.extra: not used"},
		{"unknown key", minimal + "delete_all: true\n", "delete_all"},
		{"unknown request key", strings.Replace(minimal, "method: DELETE,", "method: DELETE, url: x,", 1), "field url not found"},
		{"job without status", strings.Replace(minimal, "delete:\n", "delete:\n  job: id\n", 1), "job_status: required: delete.job names a job"},
		{"status without job", minimal + "job_status: {request: {method: GET, path: '/jobs/{job}'}, state: s, states: {done: erased}}\n", "job_status: only used with delete.job"},
		{"status without job placeholder", strings.Replace(minimal, "delete:\n", "delete:\n  job: id\n", 1) + "job_status: {request: {method: GET, path: /jobs}, state: s, states: {done: erased}}\n", "job_status.request: must name {job}"},
		{"status names the person", strings.Replace(minimal, "delete:\n", "delete:\n  job: id\n", 1) + "job_status: {request: {method: GET, path: '/jobs/{job}/{email}'}, state: s, states: {done: erased}}\n", "job_status.request: {email} is not known"},
		{"status bad target", strings.Replace(minimal, "delete:\n", "delete:\n  job: id\n", 1) + "job_status: {request: {method: GET, path: '/jobs/{job}'}, state: s, states: {done: erased, gone: deleted}}\n", `job_status.states.gone: "deleted" is not one of`},
		{"status nothing erased", strings.Replace(minimal, "delete:\n", "delete:\n  job: id\n", 1) + "job_status: {request: {method: GET, path: '/jobs/{job}'}, state: s, states: {done: running}}\n", "job_status.states: required"},
		{"status bad path", strings.Replace(minimal, "delete:\n", "delete:\n  job: id\n", 1) + "job_status: {request: {method: GET, path: '/jobs/{job}'}, state: 'a..b', states: {done: erased}}\n", "job_status.state:"},
		{"negative poll", strings.Replace(minimal, "delete:\n", "delete:\n  job: id\n", 1) + "job_status: {request: {method: GET, path: '/jobs/{job}'}, state: s, states: {done: erased}, poll_interval: -1m}\n", "job_status.poll_interval: must not be negative"},
		{"job path with a wildcard", strings.Replace(minimal, "delete:\n", "delete:\n  job: 'jobs[*]'\n", 1) + "job_status: {request: {method: GET, path: '/jobs/{job}'}, state: s, states: {done: erased}}\n", "delete.job: a job reference is one value"},
		{"lookup ok", lookup(""), ""},
		{"lookup without name", strings.Replace(lookup(""), "name: person", "name: ''", 1), "lookups[0].name: required"},
		{"lookup without id", strings.Replace(lookup(""), "    id: id\n", "", 1), "lookups[0].id: required"},
		{"lookup by two identifiers", strings.Replace(lookup(""), "{email: '{email}'}", "{email: '{email}', phone: '{phone}'}", 1), "lookups[0].request: a lookup names exactly one"},
		{"lookup by nothing", strings.Replace(lookup(""), "{email: '{email}'}", "{all: 'yes'}", 1), "lookups[0].request: a lookup names exactly one"},
		{"lookup names id", strings.Replace(lookup(""), "path: /v1/people,", "path: '/v1/people/{id}',", 1), "lookups[0].request: {id} is not known while looking up"},
		{"delete by the person with lookups", strings.Replace(lookup(""), "'/v1/people/{id}'", "'/v1/people/{id}/{email}'", 1), "delete.request: with lookups, the request deletes by the records'"},
		{"delete by nothing with lookups", strings.Replace(lookup(""), "'/v1/people/{id}'", "'/v1/people'", 1), "delete.request: with lookups, the request deletes the records found"},
		{"ids without batch", strings.Replace(lookup(""), "'/v1/people/{id}'}", "/v1/people, json: {ids: '{ids}'}}", 1), "delete.batch_size: required with {ids}"},
		{"batch without ids", strings.Replace(lookup(""), "delete:\n", "delete:\n  batch_size: 5\n", 1), "delete.batch_size: only used with {ids}"},
		{"next without pages", strings.Replace(lookup(""), "{email: '{email}'}", "{email: '{email}', cursor: '{next}'}", 1), "lookups[0].request: {next} is only known with pages"},
		{"pages without next", lookup("    pages: {next: cursor}\n"), "lookups[0].pages: the request must name {next}"},
		{"pages too many", strings.Replace(lookup("    pages: {next: cursor, max: 5000}\n"), "{email: '{email}'}", "{email: '{email}', cursor: '{next}'}", 1), "lookups[0].pages.max: from 1 to 1000"},
		{"gives not a user id", lookup("    gives: {email: 'emails[0]'}\n"), `lookups[0].gives.email: "email" is not a user_ids.<name> kind`},
		{"bad records path", lookup("    records: 'data[x]'\n"), "lookups[0].records:"},
		{"not found 429", lookup("    not_found: {status: [429]}\n"), "lookups[0].not_found.status: 429 cannot mean no such record"},
		{"not found path without equals", lookup("    not_found: {status: [404], path: code}\n"), "lookups[0].not_found: path and equals go together"},
		{"two lookups one name", strings.Replace(lookup(""), "delete:", "  - name: person\n    request: {method: GET, path: /v2/people, query: {email: '{email}'}}\n    id: id\ndelete:", 1), `lookups[1].name: "person" names another lookup too`},
	})
	t.Run("every mistake at once", func(t *testing.T) {
		_, err := connectortest.TryBuild("http", "acme", "vendor: ''\nauth: {}\ndelete:\n  request: {method: PURGE, path: x}\n")
		for _, want := range []string{"vendor:", "base_url:", "auth:", "delete.request.method:", "delete.request.path:"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not name %s", err, want)
			}
		}
	})
	t.Run("plans", func(t *testing.T) {
		for yaml, want := range map[string]string{
			minimal: "keys [email] uses [email]",
			strings.Replace(minimal, "{email}", "{email}/{user_ids.app}", 1): "keys [email user_ids.app] uses [email user_ids.app]",
			lookup(""): "keys [email] uses [email]",
			lookup("    gives: {user_ids.acme: id}\n"): "keys [email] uses [email] resolves by [email] gives [user_ids.acme]",
		} {
			p := connectortest.Plan(t, "http", "acme", yaml)
			got := fmt.Sprintf("keys %v uses %v", p.Keys, p.Uses)
			if len(p.Gives) > 0 {
				got += fmt.Sprintf(" resolves by %v gives %v", p.ResolveBy, p.Gives)
			}
			if got != want {
				t.Errorf("plan %s, want %s", got, want)
			}
		}
	})
}

// acme is a made-up vendor with what the Go connectors' vendors do not
// all have: people found by email over cursor pages, deleted many ids a
// call, an API key in a header or query parameter, and OAuth2 client
// credentials.
type acme struct {
	*fakevendor.Server
	mu      sync.Mutex
	people  map[string]string // id → email
	deletes [][]string
	tokens  int // tokens issued
	token   string
}

func startAcme(t *testing.T, n int) *acme {
	a := &acme{Server: fakevendor.New(t), people: map[string]string{}}
	for i := range n {
		a.people[fmt.Sprintf("p-%02d", i)] = "ann@example.com"
	}
	a.people["p-99"] = "bob@example.com"
	a.Handle("GET /v1/people", func(w http.ResponseWriter, r *http.Request) {
		if !a.authorized(r) {
			fakevendor.JSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		var ids []string
		for id, e := range a.people {
			if e == r.URL.Query().Get("email") {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		from, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
		page := ids[min(from, len(ids)):min(from+2, len(ids))]
		body := map[string]any{"data": []map[string]any{}}
		for _, id := range page {
			body["data"] = append(body["data"].([]map[string]any), map[string]any{"id": id, "crm": map[string]any{"ref": "crm-" + id}})
		}
		if from+2 < len(ids) {
			body["next_cursor"] = strconv.Itoa(from + 2)
		}
		fakevendor.JSON(w, http.StatusOK, body)
	})
	a.Handle("POST /v1/people/delete", func(w http.ResponseWriter, r *http.Request) {
		if !a.authorized(r) {
			fakevendor.JSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
			return
		}
		var body struct{ IDs []string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.IDs) == 0 || len(body.IDs) > 2 {
			fakevendor.JSON(w, http.StatusBadRequest, map[string]string{"error": "1 to 2 ids"})
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		a.deletes = append(a.deletes, body.IDs)
		n := 0
		for _, id := range body.IDs {
			if _, ok := a.people[id]; ok {
				delete(a.people, id)
				n++
			}
		}
		fakevendor.JSON(w, http.StatusOK, map[string]any{"deleted": n})
	})
	a.Handle("POST /oauth/token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if r.ParseForm() != nil || r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("scope") != "people.read people.delete" {
			fakevendor.JSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
			return
		}
		if !ok {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if id != "lethe" || secret != "client-s3cr3t" {
			fakevendor.JSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		a.tokens++
		a.token = fmt.Sprintf("tok-%d", a.tokens)
		fakevendor.JSON(w, http.StatusOK, map[string]any{"access_token": a.token, "token_type": "Bearer", "expires_in": 3600})
	})
	return a
}

func (a *acme) authorized(r *http.Request) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return r.Header.Get("X-Api-Key") == "k3y" || r.URL.Query().Get("api_key") == "k3y" ||
		(a.token != "" && r.Header.Get("Authorization") == "Bearer "+a.token)
}

func (a *acme) issued() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tokens
}

func (a *acme) left(email string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, e := range a.people {
		if e == email {
			n++
		}
	}
	return n
}

// config describes acme with auth (a YAML block) and pages of at most max.
func (a *acme) config(auth string, max int) string {
	return fmt.Sprintf(`vendor: Acme
base_url: %s
auth:
%s
lookups:
  - name: person
    request:
      method: GET
      path: /v1/people
      query: {email: "{email}", cursor: "{next}"}
    records: data
    id: id
    pages: {next: next_cursor, max: %d}
    gives: {user_ids.crm: "crm.ref"}
delete:
  request:
    method: POST
    path: /v1/people/delete
    json: {ids: "{ids}"}
  batch_size: 2
  count: deleted
`, a.URL, auth, max)
}

func TestPagesAndBatches(t *testing.T) {
	t.Parallel()
	ann := connectors.Subject{Email: "ann@example.com"}
	for name, auth := range map[string]string{
		"header": "  header: {name: X-Api-Key, value: k3y}",
		"query":  "  query: {name: api_key, value: k3y}",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := startAcme(t, 5)
			c := connectortest.Build(t, "http", "acme", a.config(auth, 10))
			connectortest.Resolves(t, c.(connectors.Resolver), ann, map[connectors.Kind]string{"user_ids.crm": "[crm-p-00 crm-p-01 crm-p-02 crm-p-03 crm-p-04]"},
				"lookup=person: 5 found by email; ")
			out, err := c.Erase(connectortest.Ctx(t), ann)
			if err != nil || out.Status != connectors.StatusErased || out.Records != 5 || a.left("ann@example.com") != 0 || a.left("bob@example.com") != 1 {
				t.Fatalf("Erase = %+v, %v; %d left", out, err, a.left("ann@example.com"))
			}
			if fmt.Sprint(a.deletes) != "[[p-00 p-01] [p-02 p-03] [p-04]]" {
				t.Errorf("deletes %v, want batches of 2", a.deletes)
			}
			out, err = c.Erase(connectortest.Ctx(t), ann)
			if err != nil || out.Status != connectors.StatusNotFound || fmt.Sprint(out.SearchedBy) != "[email]" {
				t.Errorf("erased again: %+v, %v; want not found, searched by email", out, err)
			}
			for _, call := range a.Calls() {
				if strings.Contains(call.Query, "cursor=&") || strings.HasSuffix(call.Query, "cursor=") {
					t.Errorf("the first page sent an empty cursor: %s", call.Query)
				}
			}
		})
	}
	t.Run("more pages than max", func(t *testing.T) {
		t.Parallel()
		a := startAcme(t, 5)
		c := connectortest.Build(t, "http", "acme", a.config("  header: {name: X-Api-Key, value: k3y}", 2))
		_, err := c.Erase(connectortest.Ctx(t), ann)
		if err == nil || !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "more than 2 pages") || a.left("ann@example.com") != 5 {
			t.Fatalf("Erase = %v with %d left; want a permanent error before deleting anything", err, a.left("ann@example.com"))
		}
	})
}

func TestOAuth2ClientCredentials(t *testing.T) {
	t.Parallel()
	ann := connectors.Subject{Email: "ann@example.com"}
	oauth := func(a *acme, secret, extra string) string {
		return fmt.Sprintf("  oauth2:\n    token_url: %s/oauth/token\n    client_id: lethe\n    client_secret: %s\n    scopes: [people.read, people.delete]\n%s", a.URL, secret, extra)
	}
	for name, extra := range map[string]string{"basic": "", "in body": "    credentials_in_body: true\n"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := startAcme(t, 1)
			c := connectortest.Build(t, "http", "acme", a.config(oauth(a, "client-s3cr3t", extra), 10))
			v := c.(connectors.Verifier)
			for range 3 {
				if _, err := v.Verify(connectortest.Ctx(t), ann); err != nil {
					t.Fatal(err)
				}
			}
			if a.issued() != 1 {
				t.Errorf("%d tokens fetched for three calls; want one, kept", a.issued())
			}
			// The vendor revokes the token: the next call fetches another.
			a.mu.Lock()
			a.token = "revoked"
			a.mu.Unlock()
			out, err := c.Erase(connectortest.Ctx(t), ann)
			if err != nil || out.Records != 1 || a.issued() != 2 {
				t.Fatalf("after a revoked token: %+v, %v with %d tokens; want erased with a second token", out, err, a.issued())
			}
		})
	}
	t.Run("refused client", func(t *testing.T) {
		t.Parallel()
		a := startAcme(t, 1)
		c := connectortest.Build(t, "http", "acme", a.config(oauth(a, "wrong-s3cr3t", ""), 10))
		_, err := c.Erase(connectortest.Ctx(t), ann)
		if err == nil || !connectortest.IsPermanent(err) || strings.Contains(err.Error(), "wrong-s3cr3t") || strings.Contains(err.Error(), a.URL) {
			t.Fatalf("Erase = %v; want a permanent error quoting no secret", err)
		}
		if a.left("ann@example.com") != 1 {
			t.Error("deleted without a token")
		}
	})
	t.Run("token endpoint down", func(t *testing.T) {
		t.Parallel()
		a := startAcme(t, 1)
		c := connectortest.Build(t, "http", "acme", a.config(oauth(a, "client-s3cr3t", ""), 10))
		a.Inject(1, fakevendor.Status(http.StatusServiceUnavailable))
		if _, err := c.Erase(connectortest.Ctx(t), ann); err == nil || connectortest.IsPermanent(err) {
			t.Fatalf("Erase = %v; want retryable", err)
		}
		if out, err := c.Erase(connectortest.Ctx(t), ann); err != nil || out.Records != 1 {
			t.Fatalf("retried: %+v, %v", out, err)
		}
	})
}
