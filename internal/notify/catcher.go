package notify

import (
	"context"
	"encoding/json"
	"html"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// catcherKeep is how many mails a Catcher remembers.
const catcherKeep = 100

// Catcher is the Mailer of `lethe dev`: it keeps the last 100 mails in
// memory and shows them on a local "dev mailbox" page instead of sending
// them. It checks mails as SMTP does, so what passes here passes there.
type Catcher struct {
	log *zap.Logger

	mu    sync.Mutex
	mails []caught // oldest first
	seq   int
}

type caught struct {
	Mail
	ID int       `json:"id"`
	At time.Time `json:"at"`
}

// NewCatcher returns an empty Catcher.
func NewCatcher(log *zap.Logger) *Catcher {
	if log == nil {
		log = zap.NewNop()
	}
	return &Catcher{log: log.Named("mailbox")}
}

// Send keeps m and logs its subject and links; never its address, nor a
// code carried in a link's query.
func (c *Catcher) Send(ctx context.Context, m Mail) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	to, err := check(m)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.seq++
	id := c.seq
	c.mails = append(c.mails, caught{Mail: m, ID: id, At: time.Now().UTC()})
	if len(c.mails) > catcherKeep {
		c.mails = append([]caught(nil), c.mails[len(c.mails)-catcherKeep:]...)
	}
	c.mu.Unlock()
	c.log.Info("mail caught: read it in the dev mailbox",
		zap.Int("mail", id), zap.String("subject", m.Subject), zap.Strings("links", loggableLinks(m, to)))
	return nil
}

// Mails returns the kept mails, newest first.
func (c *Catcher) Mails() []Mail {
	all := c.snapshot()
	out := make([]Mail, len(all))
	for i, m := range all {
		out[i] = m.Mail
	}
	return out
}

// Last returns the newest mail to the address to.
func (c *Catcher) Last(to string) (Mail, bool) {
	for _, m := range c.snapshot() {
		if strings.EqualFold(m.To, to) {
			return m.Mail, true
		}
	}
	return Mail{}, false
}

func (c *Catcher) snapshot() []caught {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]caught, len(c.mails))
	for i, m := range c.mails {
		out[len(c.mails)-1-i] = m
	}
	return out
}

// Handler serves the dev mailbox: an HTML page of the mails, newest first,
// or with ?format=json the same as a JSON array.
func (c *Catcher) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		mails := c.snapshot()
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.URL.Query().Get("format") == "json" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(mails)
			return
		}
		type view struct {
			caught
			Body []paragraph
		}
		views := make([]view, len(mails))
		for i, m := range mails {
			views[i] = view{caught: m, Body: layout(linkify(m.Text))}
		}
		// The mails' own HTML is shown in a sandboxed frame, which
		// inherits this policy: no script runs, whatever a mail holds.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = mailboxPage.Execute(w, views)
	})
}

var urlRe = regexp.MustCompile(`https?://[^\s<>"'\x60]+`)

// trimURL drops the punctuation that ends a sentence rather than a link.
func trimURL(u string) string { return strings.TrimRight(u, ".,;:!?)]}") }

// linkify cuts text into plain and link segments.
func linkify(text string) []segment {
	var segs []segment
	last := 0
	for _, loc := range urlRe.FindAllStringIndex(text, -1) {
		u := trimURL(text[loc[0]:loc[1]])
		segs = append(segs, segment{Text: text[last:loc[0]]}, segment{Text: u, URL: u})
		last = loc[0] + len(u)
	}
	return append(segs, segment{Text: text[last:]})
}

// secretParams are query parameters whose values never reach a log.
var secretParams = map[string]bool{
	"code": true, "token": true, "otp": true, "key": true, "secret": true,
	"password": true, "email": true, "proof": true,
}

// loggableLinks are the http(s) links of m, each at most once, with
// secret query values blanked and any link that holds the address left
// out entirely.
func loggableLinks(m Mail, to string) []string {
	seen := map[string]bool{}
	links := []string{}
	lowerTo := strings.ToLower(to)
	// The HTML part's links are the text's, but entity-escaped (&amp;).
	for _, raw := range urlRe.FindAllString(m.Text+"\n"+html.UnescapeString(m.HTML), -1) {
		raw = trimURL(raw)
		if seen[raw] {
			continue
		}
		seen[raw] = true
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		unq, _ := url.PathUnescape(raw)
		if strings.Contains(strings.ToLower(unq), lowerTo) || strings.Contains(strings.ToLower(raw), lowerTo) {
			links = append(links, "[a link holding the address]")
			continue
		}
		if u.RawQuery != "" {
			q := u.Query()
			for k, vs := range q {
				for i, v := range vs {
					if secretParams[strings.ToLower(k)] || strings.Contains(v, "@") {
						vs[i] = "redacted"
					}
				}
				q[k] = vs
			}
			u.RawQuery = q.Encode()
		}
		u.User = nil
		u.Fragment, u.RawFragment = "", ""
		links = append(links, u.String())
	}
	return links
}

var mailboxPage = template.Must(template.New("mailbox").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Lethe dev mailbox</title>
<style>
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;line-height:1.5}
article{border:1px solid #ccc;border-radius:6px;margin:1rem 0;padding:1rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0 0 1rem}
dt{color:#555}dd{margin:0}
.body{white-space:normal}
iframe{width:100%;height:28rem;border:1px solid #ddd}
</style>
</head>
<body>
<h1>Lethe dev mailbox</h1>
<p>Mail that <code>lethe dev</code> would have sent, newest first (the last 100). Nothing here left this machine.</p>
{{range .}}<article id="mail-{{.ID}}">
<h2 dir="auto">{{.Subject}}</h2>
<dl><dt>To</dt><dd>{{.To}}</dd><dt>At</dt><dd>{{.At.Format "2006-01-02 15:04:05 UTC"}}</dd>{{if .Lang}}<dt>Language</dt><dd>{{.Lang}}</dd>{{end}}</dl>
<div class="body" dir="auto" lang="{{.Lang}}">{{range .Body}}<p>{{range $i, $line := .}}{{if $i}}<br>{{end}}{{range $line}}{{if .URL}}<a href="{{.URL}}">{{.Text}}</a>{{else}}{{.Text}}{{end}}{{end}}{{end}}</p>{{end}}</div>
{{if .HTML}}<details><summary>HTML version</summary><iframe sandbox title="HTML version" srcdoc="{{.HTML}}"></iframe></details>{{end}}
</article>
{{else}}<p>No mail yet.</p>
{{end}}</body>
</html>
`))
