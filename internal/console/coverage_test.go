package console_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/coverage"
)

// TestDataMapPage: every role sees the data map; each status is said in
// words that claim no more than was checked, findings are listed by place
// (never by value), and a map that cannot be read is an error page, not an
// empty map.
func TestDataMapPage(t *testing.T) {
	ran := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	fail := false
	rows := []coverage.Row{
		{Connector: "shop-db", Type: "sql", DisplayName: "Web shop", ErasesBy: []connectors.Kind{connectors.Email, connectors.UserIDKind("shop")},
			Status: coverage.StatusUncovered, Uncovered: 1, Ignored: 1, Covered: 2, Places: 40, RanAt: &ran,
			Findings: []connectors.Finding{
				{Place: "orders.delivery_note", Kind: connectors.DataFreeText, Status: connectors.Uncovered, Reason: "no statement touches orders", Sampled: 200, Matched: 12},
				{Place: "audit.actor", Kind: connectors.DataName, Status: connectors.Ignored, Reason: "kept for tax law"},
			}},
		{Connector: "crm", Type: "hubspot", ErasesBy: []connectors.Kind{connectors.Email}, Status: coverage.StatusCannotDiscover, Findings: []connectors.Finding{}},
		{Connector: "files", Type: "filesystem", ErasesBy: []connectors.Kind{connectors.Email}, Status: coverage.StatusNotRun, Findings: []connectors.Finding{}},
		{Connector: "bucket", Type: "s3", ErasesBy: []connectors.Kind{connectors.Email}, Status: coverage.StatusFailed, Error: "403 from S3: check the credentials", RanAt: &ran, Findings: []connectors.Finding{}},
	}
	e := setup(t, func(o *options) {
		o.dataMap = func(context.Context) ([]coverage.Row, error) {
			if fail {
				return nil, errors.New("nats: timeout")
			}
			return rows, nil
		}
	})
	for _, who := range []struct{ name, pw string }{{"ada", adminPW}, {"bob", agentPW}, {"cyd", auditorPW}} {
		b := e.browser()
		b.login(who.name, who.pw)
		if !strings.Contains(b.get("/console").body, `href="/console/coverage"`) {
			t.Errorf("%s is not offered the data map", who.name)
		}
		p := b.get("/console/coverage")
		if p.status != http.StatusOK {
			t.Fatalf("%s: data map %d", who.name, p.status)
		}
		for _, want := range []string{
			"Web shop", "1 place with personal data no rule covers", "1 ignored on purpose",
			"<code>orders.delivery_note</code>", "free text with email", "12 of 200", "kept for tax law", "by name",
			"Lethe cannot read this system's layout: its coverage is not checked",
			"Not discovered yet: nothing is known about its coverage",
			"Discovery did not finish</strong>: 403 from S3", "Discovery runs every 24h0m0s",
			"<code>user_ids.shop</code>",
		} {
			if !strings.Contains(p.body, want) {
				t.Errorf("%s: data map does not say %q", who.name, want)
			}
		}
		if strings.Count(p.body, "<td>never</td>") != 2 {
			t.Errorf("%s: want 'never' for the two systems without a discovery", who.name)
		}
	}
	fail = true
	b := e.browser()
	b.login("cyd", auditorPW)
	if p := b.get("/console/coverage"); p.status != http.StatusInternalServerError || strings.Contains(p.body, "Every place found is covered") {
		t.Errorf("an unreadable map: %d", p.status)
	}
	if p := e.browser().get("/console/coverage"); p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/console/login") {
		t.Errorf("signed out: data map %d → %q, want a redirect to sign in", p.status, p.location())
	}
}
