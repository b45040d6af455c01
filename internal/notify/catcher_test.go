package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-dev/lethe/internal/notify"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func newCatcher(t *testing.T) (*notify.Catcher, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	return notify.NewCatcher(zap.New(core)), logs
}

// logText is everything a log entry says, message and fields.
func logText(t *testing.T, e observer.LoggedEntry) string {
	t.Helper()
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	buf, err := enc.EncodeEntry(e.Entry, e.Context)
	if err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestCatcherLogsLinksNotTheAddressOrCode(t *testing.T) {
	t.Parallel()
	c, logs := newCatcher(t)
	m := notify.Mail{
		To:      recipient,
		Subject: "Confirm your erasure request",
		Text: "Your code: 482913\n\nOr confirm here: https://privacy.example.com/portal/verify/r1.sig?code=482913&lang=en.\n" +
			"Follow it: https://privacy.example.com/portal/status/r1.sig2\n" +
			"Unsubscribe: https://lists.example.com/u?addr=ada.lovelace%40example.org\n",
		HTML: `<a href="https://privacy.example.com/portal/verify/r1.sig?lang=en&amp;code=482913#code=482913">confirm</a>`,
		Lang: "en",
	}
	if err := c.Send(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("%d log lines, want 1", len(entries))
	}
	line := logText(t, entries[0])
	for _, want := range []string{"Confirm your erasure request", "https://privacy.example.com/portal/verify/r1.sig?", "lang=en", "https://privacy.example.com/portal/status/r1.sig2"} {
		if !strings.Contains(line, want) {
			t.Errorf("log lacks %q: %s", want, line)
		}
	}
	for _, bad := range []string{"482913", "ada.lovelace", "example.org"} {
		if strings.Contains(line, bad) {
			t.Errorf("log holds %q: %s", bad, line)
		}
	}
	if got := c.Mails(); len(got) != 1 || got[0] != m {
		t.Errorf("kept %+v", got)
	}
}

func TestCatcherKeepsTheLast100NewestFirst(t *testing.T) {
	t.Parallel()
	c, _ := newCatcher(t)
	if len(c.Mails()) != 0 {
		t.Fatal("not empty at start")
	}
	var wg sync.WaitGroup
	for i := range 105 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Mails to one person, and one to another at the end.
			to := recipient
			if i == 104 {
				to = "grace@example.net"
			}
			if err := c.Send(t.Context(), notify.Mail{To: to, Subject: fmt.Sprint("mail ", i), Text: "x"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got := c.Mails()
	if len(got) != 100 {
		t.Fatalf("kept %d, want 100", len(got))
	}
	// Concurrent sends land in any order; sequential ones tell newest first.
	for i := range 3 {
		if err := c.Send(t.Context(), notify.Mail{To: recipient, Subject: fmt.Sprint("late ", i), Text: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	got = c.Mails()
	if len(got) != 100 || got[0].Subject != "late 2" || got[1].Subject != "late 1" || got[2].Subject != "late 0" {
		t.Errorf("order: %q %q %q (of %d)", got[0].Subject, got[1].Subject, got[2].Subject, len(got))
	}
	if m, ok := c.Last(strings.ToUpper(recipient)); !ok || m.Subject != "late 2" {
		t.Errorf("Last = %+v %v", m, ok)
	}
	if _, ok := c.Last("nobody@example.com"); ok {
		t.Error("Last found a mail to nobody")
	}
}

func TestCatcherRefusesWhatSMTPWould(t *testing.T) {
	t.Parallel()
	c, logs := newCatcher(t)
	for _, m := range []notify.Mail{
		{To: recipient + "\r\nBcc: x@example.net", Subject: "s", Text: "t"},
		{To: "not an address", Subject: "s", Text: "t"},
		{To: recipient, Subject: "s\nBcc: x@example.net", Text: "t"},
		{To: recipient, Subject: "s", Text: ""},
	} {
		if err := c.Send(t.Context(), m); !errors.Is(err, notify.ErrInvalid) {
			t.Errorf("%q: err = %v", m.To, err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Send(ctx, notify.Mail{To: recipient, Subject: "s", Text: "t"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
	if len(c.Mails()) != 0 || logs.Len() != 0 {
		t.Errorf("kept %d, logged %d", len(c.Mails()), logs.Len())
	}
}

func TestCatcherHandler(t *testing.T) {
	t.Parallel()
	c, _ := newCatcher(t)
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)

	get := func(path string) (*http.Response, string) {
		t.Helper()
		res, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, string(b)
	}

	res, body := get("/")
	if res.StatusCode != 200 || !strings.Contains(body, "No mail yet") {
		t.Errorf("empty mailbox: %d %s", res.StatusCode, body)
	}
	if _, body := get("/?format=json"); strings.TrimSpace(body) != "[]" {
		t.Errorf("empty JSON: %s", body)
	}

	hostile := notify.Mail{
		To:      `o'brien&co@example.org`,
		Subject: `<script>alert("subject")</script>`,
		Text:    "Hi <img src=x onerror=alert(1)>\nConfirm: https://privacy.example.com/portal/verify/t?code=1&lang=he.\nNot a link: javascript:alert(2)",
		HTML:    `<p onclick="alert(3)">"quoted" & <script>alert(4)</script></p>`,
		Lang:    "he",
	}
	first := notify.Mail{To: recipient, Subject: "first", Text: "one"}
	for _, m := range []notify.Mail{first, hostile} {
		if err := c.Send(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}

	res, body = get("/")
	if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	for _, bad := range []string{"<script>", "<img", "brien&co", `onclick="alert`} {
		if strings.Contains(body, bad) {
			t.Errorf("page holds %q unescaped", bad)
		}
	}
	for _, want := range []string{
		"&lt;script&gt;alert(&#34;subject&#34;)&lt;/script&gt;",
		`<a href="https://privacy.example.com/portal/verify/t?code=1&amp;lang=he">https://privacy.example.com/portal/verify/t?code=1&amp;lang=he</a>.`,
		recipient, // the dev page may show the address
		"o&#39;brien&amp;co@example.org",
		`sandbox`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, `href="javascript`) {
		t.Error("a javascript: link became clickable")
	}
	if i, j := strings.Index(body, "alert(&#34;subject"), strings.Index(body, ">first<"); i < 0 || j < 0 || i > j {
		t.Errorf("not newest first (%d, %d)", i, j)
	}

	res, body = get("/?format=json")
	if res.Header.Get("Content-Type") != "application/json" {
		t.Errorf("JSON Content-Type %q", res.Header.Get("Content-Type"))
	}
	var got []notify.Mail
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != hostile || got[1] != first {
		t.Errorf("JSON mails: %+v", got)
	}

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", nil)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", res.StatusCode)
	}
}
