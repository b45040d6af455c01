package app_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/app"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// TestReplayAfterBackupRestore: a person is erased and shredded; a backup
// from before brings their rows and files back; `lethe replay` finds them
// through the suppression list (the identifiers themselves are gone), erases
// them again, records it on the request, leaves everyone else alone, and
// says which systems it could not scan.
func TestReplayAfterBackupRestore(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	scan := tg.scanningYAML()
	in := newInstance(t, ns.ClientURL(), scan+"  - {name: crm, type: test_script, config: {}}\n", "")
	in.serve(t)
	base := "http://" + in.addr
	today := time.Now().UTC().Format(time.DateOnly)

	tg.seed(t, "gone@example.com")
	r := fileRequest(t, base, in.adminToken, "gone@example.com")
	waitStatus(t, base, in.adminToken, r.ID, 30*time.Second, "completed")
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/shred", in.adminToken, `{"reason":"test"}`, nil); code != 200 {
		t.Fatalf("shred: %d", code)
	}

	// The backup comes back: the erased person, and someone never erased.
	tg.seed(t, "gone@example.com")
	tg.seed(t, "stays@example.com")

	run := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := app.Run(context.Background(), append([]string{"lethe", "replay", "--config", in.configPath}, args...), os.Getenv, &out, &out)
		return code, out.String()
	}
	code, out := run("--since", today, "--dry-run")
	if code != 0 || !strings.Contains(out, "shop-db (sql): scanned") || !strings.Contains(out, "1 belong to people erased") {
		t.Fatalf("dry run = %d:\n%s", code, out)
	}
	if rows, files := tg.remaining(t, "gone@example.com"); rows != 4 || files != 2 {
		t.Fatalf("a dry run erased data: %d rows, %d files left", rows, files)
	}

	code, out = run("--since", today)
	if code != 0 || !strings.Contains(out, "erased 4 records again") || !strings.Contains(out, "erased 2 records again") ||
		!strings.Contains(out, "Cannot scan, so check or erase by hand: crm (test_script)") {
		t.Fatalf("replay = %d:\n%s", code, out)
	}
	if strings.Contains(out, "gone@example.com") || strings.Contains(out, "stays@example.com") {
		t.Errorf("the replay report names a person:\n%s", out)
	}
	if rows, files := tg.remaining(t, "gone@example.com"); rows != 0 || files != 0 {
		t.Errorf("after replay: %d rows, %d files of the erased person", rows, files)
	}
	if rows, files := tg.remaining(t, "stays@example.com"); rows != 4 || files != 2 {
		t.Errorf("replay erased someone never erased: %d rows, %d files left", rows, files)
	}
	replays, chainValid := countEvents(t, base, in.adminToken, r.ID, "replay.erased", "")
	if replays != 2 || !chainValid {
		t.Errorf("%d replay events (want one per system), chain valid %v", replays, chainValid)
	}
	// Erasures completed after the backup date only: a later date finds
	// nobody.
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	if code, out := run("--since", tomorrow); code != 0 || !strings.Contains(out, "(0 requests on the suppression list)") {
		t.Errorf("replay since tomorrow = %d:\n%s", code, out)
	}
	if code, _ := run("--since", "last week"); code != 2 {
		t.Errorf("a bad --since exits %d, want 2", code)
	}
}

// TestKEKRotationEndToEnd: a new key-encryption key is put first, `lethe
// rewrap` moves every live data key under it, the old key is removed, and
// the live requests still open.
func TestKEKRotationEndToEnd(t *testing.T) {
	ns := testenv.NATS(t)
	in := newInstance(t, ns.ClientURL(), "\n  - {name: crm, type: test_script, config: {}}", "")
	first := in.serveArgs(t)
	base := "http://" + in.addr
	r := fileRequest(t, base, in.adminToken, "rotate@example.com")
	waitStatus(t, base, in.adminToken, r.ID, 30*time.Second, "completed")
	stopServe(t, first)

	oldKey := `{id: test, key: {file: "` + in.dir + `/keys/kek.key"}}`
	newKeyFile := in.dir + "/kek-2.key"
	writeFile(t, newKeyFile, []byte(strings.Repeat("ab", 32)+"\n"))
	newKey := `{id: kek-2, key: {file: "` + newKeyFile + `"}}`
	cfg := string(mustRead(t, in.configPath))
	if !strings.Contains(cfg, "encryption: {keys: [{id: test, key: {file: ") {
		t.Fatalf("unexpected config:\n%s", cfg)
	}
	start := strings.Index(cfg, "encryption: {keys: [")
	end := start + strings.Index(cfg[start:], "\n")
	rotated := cfg[:start] + "encryption: {keys: [" + newKey + ", " + oldKey + "]}" + cfg[end:]
	writeFile(t, in.configPath, []byte(rotated))
	var out bytes.Buffer
	if code := app.Run(context.Background(), []string{"lethe", "rewrap", "--config", in.configPath}, os.Getenv, &out, &out); code != 0 ||
		!strings.Contains(out.String(), "re-wrapped 1 data key(s); all live data keys are under key kek-2") {
		t.Fatalf("rewrap = %d: %s", code, out.String())
	}
	retired := cfg[:start] + "encryption: {keys: [" + newKey + "]}" + cfg[end:]
	writeFile(t, in.configPath, []byte(retired))
	in.serveArgs(t)
	var got struct {
		Subject struct {
			Email string `json:"email"`
		} `json:"subject"`
	}
	if code := call(t, "GET", base+"/v1/requests/"+r.ID, in.adminToken, "", &got); code != 200 || got.Subject.Email != "rotate@example.com" {
		t.Errorf("after retiring the old KEK: %d %+v", code, got)
	}
}
