package app_test

import (
	"bytes"
	"encoding/base64"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/demo"
)

// TestShreddingLeavesNoIdentifiers runs `lethe dev` (SQLite store, embedded
// NATS), erases two demo customers, shreds them, and then reads every byte
// Lethe wrote (its database with WAL, the NATS store, the logs) looking for
// their identifiers in clear or base64: there must be none. The
// certificates still verify and the suppression list still knows them.
func TestShreddingLeavesNoIdentifiers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	base, _, stop := runDev(t, dir)
	admin := strings.TrimSpace(string(mustRead(t, filepath.Join(dir, "admin.token"))))
	agent := strings.TrimSpace(string(mustRead(t, filepath.Join(dir, "agent.token"))))
	// With what the shop database resolved for them: customer numbers and
	// app user ids, personal data Lethe found and must keep as safe.
	secrets := []string{"alice@example.com", "carol@example.com", "+447700900003", "+447700900001",
		demo.Customers[0].AppUserID(), demo.Customers[0].CustomerNumber(0), demo.Customers[2].AppUserID(), demo.Customers[2].CustomerNumber(2)}

	a := fileRequest(t, base, agent, "alice@example.com")
	var c apiRequest
	if code := call(t, "POST", base+"/v1/requests", agent, `{"subject":{"email":"carol@example.com","phone":"+44 7700 900003"},"jurisdiction":"ccpa"}`, &c); code != 201 {
		t.Fatalf("file carol: %d", code)
	}
	for _, id := range []string{a.ID, c.ID} {
		waitStatus(t, base, agent, id, 30*time.Second, "completed")
	}

	// Importers ask before re-creating a person.
	var sup struct {
		Suppressed bool `json:"suppressed"`
	}
	for q, want := range map[string]bool{"?email=Alice@Example.com": true, "?email=bob@example.com": false, "?phone=%2B447700900003": true} {
		sup.Suppressed = !want
		if code := call(t, "GET", base+"/v1/suppressions/check"+q, agent, "", &sup); code != 200 || sup.Suppressed != want {
			t.Errorf("suppression check %s = %d %v, want %v", q, code, sup.Suppressed, want)
		}
	}
	sup.Suppressed = false
	if code := call(t, "POST", base+"/v1/suppressions/check", agent, `{"email":"carol@example.com"}`, &sup); code != 200 || !sup.Suppressed {
		t.Errorf("POST suppression check = %d %v", code, sup.Suppressed)
	}
	var bad apiError
	if code := call(t, "GET", base+"/v1/suppressions/check?email=nope", agent, "", &bad); code != 400 || bad.Error.Field != "subject.email" {
		t.Errorf("bad email check = %d %+v", code, bad)
	}

	// Shred now: admin only, with a reason.
	if code := call(t, "POST", base+"/v1/requests/"+a.ID+"/shred", agent, `{"reason":"x"}`, nil); code != 403 {
		t.Errorf("agent shred = %d, want 403", code)
	}
	for _, id := range []string{a.ID, c.ID} {
		var r struct {
			Subject    any    `json:"subject"`
			ShreddedAt string `json:"shredded_at"`
		}
		if code := call(t, "POST", base+"/v1/requests/"+id+"/shred", admin, `{"reason":"the person asked for it"}`, &r); code != 200 || r.Subject != nil || r.ShreddedAt == "" {
			t.Errorf("shred = %d %+v", code, r)
		}
	}
	var keys certificate.JWKS
	call(t, "GET", base+"/v1/keys", "", "", &keys)
	for _, id := range []string{a.ID, c.ID} {
		if _, err := certificate.Verify(getCertificate(t, base, admin, id), keys); err != nil {
			t.Errorf("certificate after shredding: %v", err)
		}
	}
	var ev struct {
		ChainValid bool `json:"chain_valid"`
	}
	if call(t, "GET", base+"/v1/requests/"+a.ID+"/events", admin, "", &ev); !ev.ChainValid {
		t.Error("the event chain broke on shredding")
	}
	if code := call(t, "GET", base+"/v1/suppressions/check?email=alice@example.com", agent, "", &sup); code != 200 || !sup.Suppressed {
		t.Error("a shredded person fell off the suppression list")
	}
	stop()

	// Every byte Lethe wrote, save the demo shop, analytics and files (the
	// organisation's own data, which the connectors erased).
	scanned := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if strings.HasPrefix(rel, "shop.db") || strings.HasPrefix(rel, "analytics.db") || strings.HasPrefix(rel, "files"+string(filepath.Separator)) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		scanned++
		for _, s := range secrets {
			for _, form := range [][]byte{[]byte(s), []byte(strings.ToUpper(s)), []byte(base64.StdEncoding.EncodeToString([]byte(s))),
				[]byte(base64.RawURLEncoding.EncodeToString([]byte(s)))} {
				if bytes.Contains(b, form) {
					t.Errorf("%s holds %q", rel, form)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned < 5 {
		t.Fatalf("scanned only %d files; the data dir is not what the test expects", scanned)
	}
}
