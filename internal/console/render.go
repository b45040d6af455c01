package console

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
	"go.uber.org/zap"
)

// csp allows nothing but the console's own style sheet: no scripts at
// all, no framing, forms only to the console's origin.
const csp = "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func setHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// pageData is what every page template gets.
type pageData struct {
	Title string
	// User, Role and CSRF are empty when nobody is signed in.
	User, Role, CSRF string
	CanAct, IsAdmin  bool
	Flash, Error     string
	Content          any
}

var pageNames = []string{"login", "list", "request", "keys", "coverage", "batches", "error"}

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"when":     when,
		"whenFull": whenFull,
		"day":      func(t time.Time) string { return t.UTC().Format(time.DateOnly) },
		"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"words":    func(s any) string { return words(fmt.Sprint(s)) },
		"plural":   plural,
	}
	pages := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func plural(n any, one, many string) string {
	if fmt.Sprint(n) == "1" {
		return "1 " + one
	}
	return fmt.Sprintf("%v %s", n, many)
}

// withSession fills the page's signed-in part.
func (d pageData) withSession(s *session) pageData {
	if s != nil {
		d.User, d.Role, d.CSRF = s.User, s.role, s.CSRF
		d.CanAct, d.IsAdmin = s.canAct(), s.isAdmin()
	}
	return d
}

// render writes a page; it renders into a buffer first, so a template
// failure becomes a clean 500 rather than half a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, d pageData) {
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout", d); err != nil {
		c.log.Error("console: render", zap.String("page", name), zap.Error(err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type errorData struct {
	Status  int
	Heading string
	Message string
}

func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	d := pageData{Title: http.StatusText(status), Content: errorData{Status: status, Heading: http.StatusText(status), Message: msg}}
	c.render(w, r, status, "error", d.withSession(s))
}

// internalError logs err (which holds no personal data: store and
// coordinator errors never carry identifiers) and shows a generic page.
// A dependency that is down (the database) is a 503 with Retry-After,
// logged at warn: waiting helps, and health checks report the outage.
func (c *Console) internalError(w http.ResponseWriter, r *http.Request, s *session, err error) {
	fields := []zap.Field{zap.String("route", r.Pattern), zap.Error(err)}
	if s != nil {
		fields = append(fields, zap.String("user", s.User))
	}
	if id := r.PathValue("id"); erasure.ValidID(id) {
		fields = append(fields, zap.String("request_id", id))
	}
	if erasure.ErrorCode(err) == erasure.EUnavailable {
		c.log.Warn("console: a dependency is unavailable", fields...)
		w.Header().Set("Retry-After", strconv.Itoa(int(erasure.RetryUnavailable.Seconds())))
		c.errorPage(w, r, s, http.StatusServiceUnavailable, "Lethe cannot reach a service it needs (such as its database) just now. Try again in a minute; if you were making a change, check afterwards whether it was made.")
		return
	}
	c.log.Error("console: internal error", fields...)
	c.errorPage(w, r, s, http.StatusInternalServerError, "Something went wrong on our side, and nothing was changed. Try again; if it keeps happening, tell an administrator.")
}

// Asset serves the console's style sheet: GET /console/assets/{file}.
func (c *Console) Asset() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		b, err := fs.ReadFile(assetFS, "assets/"+name)
		if err != nil || !fs.ValidPath(name) || strings.Contains(name, "/") {
			setHeaders(w)
			c.errorPage(w, r, nil, http.StatusNotFound, "There is no such file.")
			return
		}
		h := w.Header()
		h.Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(b)
	})
}

// NotFound answers any other path under /console: "/console/".
func (c *Console) NotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setHeaders(w)
		var sp *session
		if s, ok, err := c.currentSession(r); err == nil && ok {
			sp = &s
		}
		c.errorPage(w, r, sp, http.StatusNotFound, "There is no such page.")
	})
}
