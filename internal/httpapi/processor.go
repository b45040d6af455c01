package httpapi

import (
	"context"
	"html/template"
	"net/http"
	"net/url"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/coordinator"
	"github.com/lethe-dev/lethe/internal/erasure"
	"go.uber.org/zap"
)

// processorPage is the page a processor reached by email confirms an
// erasure on: the link's token in the path is its only credential.
var processorPage = template.Must(template.New("confirm").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<link rel="stylesheet" href="/audit/audit.css">
</head>
<body>
<header><p>Erasure request{{with .Link.Reference}} {{.}}{{end}}</p></header>
<main>
<h1>{{.Title}}</h1>
{{if .Message}}<p class="verdict {{.Tone}}" role="{{if eq .Tone "bad"}}alert{{else}}status{{end}}">{{.Message}}</p>{{end}}
{{if .Form}}
<p>{{.Link.Processor}}: on {{.Sent}} we asked you to erase a person's personal data. Please tell us what you did. This link works once, until {{.Expires}}.</p>
<form method="post" action="{{.Action}}">
<fieldset>
<legend>What did you do?</legend>
<p><input type="radio" id="erased" name="outcome" value="erased"{{if eq .Outcome "erased"}} checked{{end}} required>
<label for="erased" class="inline">We erased the person's data</label></p>
<p><input type="radio" id="not_found" name="outcome" value="not_found"{{if eq .Outcome "not_found"}} checked{{end}}>
<label for="not_found" class="inline">We searched and held nothing about the person</label></p>
</fieldset>
<label for="records">How many records did you erase? (optional)</label>
<input id="records" name="records" inputmode="numeric" pattern="[0-9]*" value="{{.Records}}" aria-describedby="records-hint">
<p class="hint" id="records-hint">Leave it empty if you cannot count them; the certificate will then say the number is unknown.</p>
<label for="evidence">What you erased, or how you searched</label>
<textarea id="evidence" name="evidence" rows="5" maxlength="2000" required aria-describedby="evidence-hint">{{.Evidence}}</textarea>
<p class="hint" id="evidence-hint">For example: "Deleted the customer profile and 14 support tickets, ticket system and backups, on 3 December". Do not repeat the person's details here: this text goes on the erasure certificate.</p>
<button type="submit">Confirm</button>
</form>
{{end}}
</main>
</body>
</html>
`))

// processorView is what processorPage shows.
type processorView struct {
	Title, Message, Tone       string
	Form                       bool
	Link                       connectors.ConfirmLink
	Sent, Expires, Action      string
	Outcome, Records, Evidence string
}

const maxConfirmForm = 64 << 10

// confirmer is the connector instance name names, if it is one whose
// tasks are confirmed by link.
func (s *server) confirmer(name string) (connectors.Confirmer, bool) {
	c, ok := s.Callbacks[name].(connectors.Confirmer)
	return c, ok
}

func (s *server) renderProcessor(w http.ResponseWriter, status int, v processorView) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	// The token is in the path: it must not leave in a Referer.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := processorPage.Execute(w, v); err != nil {
		s.Log.Warn("processor page", zap.Error(err))
	}
}

var invalidLink = processorView{Title: "This link cannot be used", Tone: "bad",
	Message: "This confirmation link is not valid: it was altered, is for another system, or has expired. Please reply to our email, and we will send a new one."}

// processorConfirmPage shows the confirmation form of a link.
func (s *server) processorConfirmPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.confirmer(r.PathValue("name"))
		if !ok {
			s.renderProcessor(w, http.StatusNotFound, invalidLink)
			return
		}
		link, err := c.ConfirmLink(r.PathValue("token"))
		if err != nil {
			s.renderProcessor(w, http.StatusForbidden, invalidLink)
			return
		}
		s.renderProcessor(w, http.StatusOK, formView(r, link, "", url.Values{}))
	})
}

func formView(r *http.Request, link connectors.ConfirmLink, problem string, form url.Values) processorView {
	v := processorView{Title: "Confirm the erasure", Form: true, Link: link, Action: r.URL.Path,
		Sent: link.Sent.Format("2 January 2006"), Expires: link.Expires.Format("2 January 2006 15:04 MST"),
		Outcome: form.Get("outcome"), Records: form.Get("records"), Evidence: form.Get("evidence")}
	if problem != "" {
		v.Message, v.Tone = problem, "bad"
	}
	return v
}

// processorConfirm records a processor's confirmation, once.
func (s *server) processorConfirm() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, token := r.PathValue("name"), r.PathValue("token")
		c, ok := s.confirmer(name)
		if !ok {
			s.renderProcessor(w, http.StatusNotFound, invalidLink)
			return
		}
		link, err := c.ConfirmLink(token)
		if err != nil {
			s.renderProcessor(w, http.StatusForbidden, invalidLink)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxConfirmForm)
		if err := r.ParseForm(); err != nil {
			s.renderProcessor(w, http.StatusBadRequest, formView(r, link, "The form could not be read; please try again.", url.Values{}))
			return
		}
		form := url.Values{"outcome": {r.PostForm.Get("outcome")}, "records": {r.PostForm.Get("records")},
			"evidence": {r.PostForm.Get("evidence")}, "token": {token}}
		got, err := c.Callback(r.Context(), r.Header, []byte(form.Encode()))
		if err != nil {
			// The connector's words are for the processor: a form mistake.
			s.renderProcessor(w, http.StatusBadRequest, formView(r, link, err.Error(), form))
			return
		}
		status, view := s.applyConfirmation(r.Context(), name, link, got)
		s.renderProcessor(w, status, view)
	})
}

// tryAgain is the page when a confirmation could not be recorded.
func tryAgain(link connectors.ConfirmLink) processorView {
	return processorView{Title: "Please try again", Tone: "bad", Link: link,
		Message: "Your confirmation could not be recorded just now. Please try again in a few minutes."}
}

func (s *server) applyConfirmation(ctx context.Context, name string, link connectors.ConfirmLink, got connectors.Callback) (int, processorView) {
	done := processorView{Title: "Thank you", Tone: "ok", Link: link}
	applied, err := s.applyCallback(ctx, name, got)
	switch {
	case erasure.ErrorCode(err) == erasure.EConflict:
		s.Log.Warn("processor confirmation refused: the link was used before", zap.String("connector", name))
		// Not "recorded": the first use may have come too late to be.
		return http.StatusConflict, processorView{Title: "Already used", Tone: "note", Link: link,
			Message: "This link has been used already, so this answer was not recorded again. The page shown the first time said whether that answer was recorded; nothing more is needed."}
	case err != nil:
		log := s.Log.Error
		if erasure.ErrorCode(err) == erasure.EUnavailable { // the store, or the job's start, not there yet
			log = s.Log.Warn
		}
		log("processor confirmation not recorded", zap.String("connector", name), zap.Error(err))
		return http.StatusServiceUnavailable, tryAgain(link)
	case applied == coordinator.AppliedStale:
		// The task no longer waits for this link: completed by staff,
		// closed, or sent again with a newer link. Nothing was recorded.
		s.Log.Info("processor confirmation for a task that no longer waits for it", zap.String("connector", name))
		return http.StatusOK, processorView{Title: "Not recorded", Tone: "note", Link: link,
			Message: "This link is no longer current: the request stopped waiting for it (it was completed another way, closed, or a newer email with a new link was sent), so your answer was not recorded. If you received a newer email about this reference, please answer through its link; otherwise nothing more is needed."}
	case applied == coordinator.AppliedNoOp:
		s.Log.Info("processor confirmation for no waiting task", zap.String("connector", name))
		done.Message = "Thank you. The request was already closed (cancelled, or completed another way), so nothing more is needed."
	default:
		s.Log.Info("processor confirmed", zap.String("connector", name), zap.String("applied", string(applied)))
		done.Message = "Thank you: your confirmation is recorded on " + s.Clock().UTC().Format("2 January 2006") + " and goes on the erasure certificate."
	}
	return http.StatusOK, done
}
