package portal

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/lethe-dev/lethe/internal/i18n"
	"go.uber.org/zap"
)

// csp keeps every page to our own origin: no script runs, nothing loads
// from elsewhere, forms post only to us and no site may frame a page.
const csp = "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range []string{"form", "verify", "status", "message"} {
		t, err := template.New("layout.html").ParseFS(files, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("portal: page %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// langLink is one entry of the language switcher.
type langLink struct {
	Code, Name, Href string
	Current          bool
}

// base is what every page shows: language, switcher, organisation, form
// token.
type base struct {
	B     *i18n.Bundle
	Org   string
	Title string
	Langs []langLink
	CSRF  string
	// Refresh, when > 0, reloads the page after that many seconds.
	Refresh int
}

func (p *Portal) base(w http.ResponseWriter, r *http.Request, b *i18n.Bundle, titleKey string) base {
	// The switcher reloads the page in another language. A POST's answer
	// switches on the page the POST came from.
	q := url.Values{}
	target := r.URL.Path
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		q = r.URL.Query()
	} else if tok, ok := strings.CutPrefix(target, "/portal/resend/"); ok {
		target = verifyPath(tok)
	}
	var langs []langLink
	for _, other := range p.catalog.All() {
		q.Set("lang", other.Code)
		langs = append(langs, langLink{Code: other.Code, Name: other.Name, Href: target + "?" + q.Encode(), Current: other.Code == b.Code})
	}
	p.rememberLang(w, r, b)
	return base{B: b, Org: p.org, Title: b.T(titleKey), Langs: langs, CSRF: p.csrfToken(w, r)}
}

func setPageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	// Links hold tokens, and pages what a person typed: keep both out
	// of caches and out of Referer headers.
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
}

func (p *Portal) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := p.pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		p.log.Error("render page", zap.String("page", name), zap.Error(err))
		setPageHeaders(w)
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("internal error"))
		return
	}
	setPageHeaders(w)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// redirect answers a POST with 303 See Other, so reloading the next page
// does not send the form again.
func redirect(w http.ResponseWriter, r *http.Request, to string) {
	setPageHeaders(w)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// messagePage is a page with one sentence: errors, refusals, closed
// requests.
type messagePage struct {
	base
	Text     string
	Alert    bool
	Link     string
	LinkText string
}

// message shows the text of key, with a link to start again.
func (p *Portal) message(w http.ResponseWriter, r *http.Request, status int, storedLang, key string) {
	p.render(w, status, "message", p.messagePage(w, r, status, storedLang, key))
}

func (p *Portal) messagePage(w http.ResponseWriter, r *http.Request, status int, storedLang, key string) messagePage {
	b := p.bundle(r, storedLang)
	return messagePage{
		base: p.base(w, r, b, "site.title"), Text: b.T(key), Alert: status >= 400,
		Link: withLang("/portal", b), LinkText: b.T("verify.start_again"),
	}
}

// notFound is the one answer to any link that is not ours: the same page
// whatever the link, which it does not echo back.
func (p *Portal) notFound(w http.ResponseWriter, r *http.Request) {
	page := p.messagePage(w, r, http.StatusNotFound, "", "status.notfound")
	for i, l := range page.Langs {
		page.Langs[i].Href = withLang("/portal", p.catalog.Get(l.Code))
	}
	p.render(w, http.StatusNotFound, "message", page)
}

// Asset serves the portal's style sheet: GET /portal/assets/{file}.
func (p *Portal) Asset() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		if !fs.ValidPath(name) || strings.Contains(name, "/") {
			p.notFound(w, r)
			return
		}
		b, err := fs.ReadFile(files, path.Join("assets", name))
		if err != nil {
			p.notFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(b)
	})
}
