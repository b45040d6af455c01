package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/console"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// TestDatabaseOutageAnswers503: the database goes away under a running
// Lethe (a proxy between them is cut, connections and all, as when
// PostgreSQL restarts). The API, the portal and the console answer 503
// with Retry-After and "unavailable", not 500; the failures are logged as
// warnings, not errors; /healthz says not ready. When the database is back
// the same calls work again, without a restart.
func TestDatabaseOutageAnswers503(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	hash, err := console.HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	in := newInstance(t, ns.ClientURL(), tg.connectorsYAML(), fmt.Sprintf(`
public_url: "http://%s"
portal: {enabled: true}
smtp: {host: 127.0.0.1, port: 1, from: "Test Org Privacy <privacy@example.com>"}
console:
  insecure_cookies: true
  users:
    - {name: ada, role: agent, password_hash: %q}`, "", hash))
	fixPublicURL(t, in)
	db := throughProxy(t, in)
	logs := in.serve(t)
	base := "http://" + in.addr
	filed := fileRequest(t, base, in.agentToken, "before.outage@example.com")

	staff := personBrowser(t)
	_, body, _ := page(t, staff, "GET", base+"/console/login", nil)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no form token on the sign-in page")
	}
	if code, _, _ := page(t, staff, "POST", base+"/console/login", url.Values{"csrf": {m[1]}, "name": {"ada"}, "password": {"correct horse battery"}}); code != 303 {
		t.Fatalf("sign-in = %d", code)
	}
	person := personBrowser(t)
	_, body, _ = page(t, person, "GET", base+"/portal", nil)
	portalForm := csrfField.FindStringSubmatch(body)
	if portalForm == nil {
		t.Fatal("no form token on the portal form")
	}

	db.Down()
	api := []struct{ method, path, body string }{
		{"GET", "/v1/requests/" + filed.ID, ""},
		{"GET", "/v1/requests", ""},
		{"POST", "/v1/requests", `{"subject":{"email":"during.outage@example.com"},"jurisdiction":"gdpr"}`},
		{"POST", "/v1/requests/" + filed.ID + "/cancel", `{"reason":"asked twice"}`},
	}
	for _, c := range api {
		resp, e := apiCall(t, c.method, base+c.path, in.agentToken, c.body)
		if resp.StatusCode != http.StatusServiceUnavailable || e.Error.Code != "unavailable" {
			t.Errorf("%s %s while the database is down: %d %q, want 503 unavailable", c.method, c.path, resp.StatusCode, e.Error.Code)
		}
		if ra := resp.Header.Get("Retry-After"); ra != "5" {
			t.Errorf("%s %s: Retry-After %q, want 5", c.method, c.path, ra)
		}
		if e.Error.Message == "" || e.Error.Message == "internal error" {
			t.Errorf("%s %s: message %q does not say what is wrong", c.method, c.path, e.Error.Message)
		}
	}
	for name, p := range map[string]func() (int, string, string){
		"console request page": func() (int, string, string) {
			return pageWithRetry(t, staff, "GET", base+"/console/requests/"+filed.ID, nil)
		},
		"portal form sent": func() (int, string, string) {
			return pageWithRetry(t, person, "POST", base+"/portal", url.Values{"csrf": {portalForm[1]}, "email": {"person@example.com"}, "jurisdiction": {"gdpr"}})
		},
	} {
		code, ra, body := p()
		if code != http.StatusServiceUnavailable || ra != "5" || !strings.Contains(body, "again in a minute") {
			t.Errorf("%s while the database is down: %d, Retry-After %q, want 503 and a page saying to try again:\n%s", name, code, ra, body)
		}
	}
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/healthz while the database is down: %v %v, want 503", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
	warned := 0
	for _, l := range logLines(t, logs.String()) {
		if l["logger"] != "http" && !strings.HasPrefix(fmt.Sprint(l["msg"]), "console:") && l["msg"] != "file a portal request" {
			continue
		}
		switch l["level"] {
		case "error":
			t.Errorf("an outage logged as an error: %v", l)
		case "warn":
			warned++
		}
	}
	if warned < len(api)+2 {
		t.Errorf("%d warnings for %d failed calls:\n%s", warned, len(api)+2, logs.String())
	}

	db.Up()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got apiRequest
		code := call(t, "GET", base+"/v1/requests/"+filed.ID, in.agentToken, "", &got)
		if code == http.StatusOK && got.ID == filed.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET the request after the database is back: %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	fileRequest(t, base, in.agentToken, "after.outage@example.com")
	if code, _, _ := page(t, staff, "GET", base+"/console/requests/"+filed.ID, nil); code != http.StatusOK {
		t.Errorf("console request page after the outage: %d", code)
	}
	waitStatus(t, base, in.agentToken, filed.ID, 60*time.Second, "completed")
}

// throughProxy points in's store at a proxy to the real PostgreSQL, so
// that the test can take the database away from this instance only.
func throughProxy(t *testing.T, in *instance) *testenv.Outage {
	t.Helper()
	db, proxied := testenv.PostgresOutage(t, in.storeURL)
	b, err := os.ReadFile(in.configPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(b), fmt.Sprintf("url: %q", in.storeURL), fmt.Sprintf("url: %q", proxied), 1)
	if cfg == string(b) {
		t.Fatal("the store URL is not in the config")
	}
	if err := os.WriteFile(in.configPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return db
}

func apiCall(t *testing.T, method, u, token, body string) (*http.Response, apiError) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e apiError
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("%s %s: %d, not JSON: %v", method, u, resp.StatusCode, err)
	}
	return resp, e
}

// pageWithRetry is page that also returns the Retry-After header.
func pageWithRetry(t *testing.T, c *http.Client, method, u string, form url.Values) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(form.Encode()))
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
}

// logLines parses JSON log lines.
func logLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}
