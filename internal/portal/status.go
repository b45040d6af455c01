package portal

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/i18n"
)

// systemLine is one system's outcome. Whoever holds the status link is the
// person the request is about, so naming the systems is fine here.
type systemLine struct {
	Name    string
	Outcome string
	Done    bool
}

type statusPage struct {
	base
	// Closed requests (cancelled, expired, shredded, purged) show one
	// neutral sentence and the certificate, if any; nothing else is left.
	Closed   bool
	Status   erasure.RequestStatus
	State    string
	Received string
	Due      string
	Extended string
	// Denied is the reason a denied request was refused.
	Denied      string
	Systems     []systemLine
	Certificate string
	// Cert is the person's reading of the certificate.
	Cert *certView
}

// Status shows where a request stands: GET /portal/status/{token}.
func (p *Portal) Status() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := p.parseToken(purposeStatus, r.PathValue("token"))
		if !ok {
			p.notFound(w, r)
			return
		}
		ctx := r.Context()
		req, pr, purge, err := p.lookup(ctx, id)
		if err != nil {
			p.failed(w, r, id, err)
			return
		}
		b := p.bundle(r, pr.Lang)
		var page statusPage
		switch {
		case purge != nil:
			page.Closed, page.State, page.Certificate = true, b.T("status.closed"), certificateLink(purge.CertificateID)
		case req.Status == erasure.RequestCancelled:
			page.Closed, page.State = true, b.T("status.state.cancelled")
		case !req.ShreddedAt.IsZero():
			page.Closed, page.State = true, b.T("status.closed")
			page.Certificate, _, err = p.certificate(ctx, b, id) // the link only: nothing else is left
		default:
			err = p.fillStatus(ctx, b, req, &page)
		}
		if err != nil {
			p.serverError(w, r, pr.Lang, "read a request's status", id, err)
			return
		}
		page.base = p.base(w, r, b, "status.heading")
		if !page.Closed && !req.Status.Final() {
			// While work goes on the page looks again by itself.
			page.Refresh = 30
		}
		p.render(w, http.StatusOK, "status", page)
	})
}

func (p *Portal) fillStatus(ctx context.Context, b *i18n.Bundle, req erasure.Request, page *statusPage) error {
	tasks, err := p.store.Tasks(ctx, req.ID)
	if err != nil {
		return err
	}
	slices.SortFunc(tasks, func(a, b erasure.Task) int { return strings.Compare(a.Connector, b.Connector) })
	done, total, resolving := 0, 0, false
	for _, t := range tasks {
		if t.Phase == erasure.PhaseResolve {
			resolving = resolving || t.Status.Active()
			continue // looking the person up is not a system's erasure
		}
		total++
		line := systemLine{Name: p.systemName(t.Connector), Outcome: b.T("status.system.pending"), Done: t.Status.Done()}
		if t.Status.Done() {
			done++
			line.Outcome = b.T("status.system." + string(t.Status))
		}
		page.Systems = append(page.Systems, line)
	}
	page.Status = req.Status
	key := "status.state." + string(req.Status)
	switch {
	case b.T(key) == key: // received: a moment before it is held or started
		key = "status.state.in_progress"
	case req.Status == erasure.RequestInProgress && (resolving || total == 0):
		key = "status.state.resolving"
	}
	page.State = b.T(key, "done", strconv.Itoa(done), "total", strconv.Itoa(total))
	page.Received = b.T("status.received", "date", day(b, req.ReceivedAt))
	if !req.Status.Final() { // a deadline means nothing once it is over
		page.Due = b.T("status.due", "date", day(b, req.DueAt))
	}
	if !req.ExtendedAt.IsZero() || req.Status == erasure.RequestDenied {
		events, err := p.store.Events(ctx, req.ID)
		if err != nil {
			return err
		}
		for _, e := range events {
			switch {
			case e.Type == erasure.EventExtended && !req.Status.Final():
				page.Extended = b.T("status.extended", "date", day(b, req.DueAt), "reason", e.Reason)
			case e.Type == erasure.EventRequestStatus && req.Status == erasure.RequestDenied && statusTo(e) == erasure.RequestDenied:
				page.Denied = e.Reason
			}
		}
	}
	if req.Status == erasure.RequestCompleted || req.Status == erasure.RequestCompletedWithExemptions {
		page.Certificate, page.Cert, err = p.certificate(ctx, b, req.ID)
	}
	return err
}

// certificateLink opens the certificate on the audit page, which checks
// its signature and log proof in the browser.
func certificateLink(id string) string {
	if id == "" {
		return ""
	}
	return "/audit?" + url.Values{"certificate": {id}}.Encode()
}

// day is a date in the page's language, "1 June 2026", from the
// date.format and date.month.N messages the emails use too; ISO 8601 for a
// language without them.
func day(b *i18n.Bundle, t time.Time) string {
	t = t.UTC()
	month := "date.month." + strconv.Itoa(int(t.Month()))
	format, name := b.T("date.format"), b.T(month)
	if format == "date.format" || name == month {
		return t.Format(time.DateOnly)
	}
	return b.T("date.format", "day", strconv.Itoa(t.Day()), "month", name, "year", strconv.Itoa(t.Year()))
}

// systemName is how people are shown a connector instance.
func (p *Portal) systemName(instance string) string {
	if n := p.systemNames[instance]; n != "" {
		return n
	}
	return instance
}

// statusTo is the status a status-change event moved its request to.
func statusTo(e erasure.Event) erasure.RequestStatus {
	var d struct {
		To erasure.RequestStatus `json:"to"`
	}
	if json.Unmarshal(e.Data, &d) != nil {
		return ""
	}
	return d.To
}
