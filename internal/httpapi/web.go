package httpapi

import (
	"embed"
	"mime"
	"net/http"
	"path"
)

//go:embed web/audit.html web/audit.css web/audit.js web/verify.js
var web embed.FS

func (s *server) auditPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := web.ReadFile("web/audit.html")
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Frame-Options", "DENY")
		_, _ = w.Write(b)
	})
}

// auditAsset serves the page's script and style sheet.
func (s *server) auditAsset() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		b, err := web.ReadFile("web/" + name)
		if err != nil || name == "audit.html" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(b)
	})
}
