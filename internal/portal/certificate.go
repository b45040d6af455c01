package portal

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/i18n"
	"github.com/lethe-dev/lethe/internal/store"
)

// certView is the person's own reading of their certificate, in their
// language: what was done in each system and when, what was kept and on
// what legal basis, and how anyone can check it. The auditor page (Link)
// has the signature, the log proof and the evidence.
type certView struct {
	ID, Issued, Deadline, Link string
	Systems                    []certSystem
}

type certSystem struct {
	Name, Outcome, Afterwards string
	Kept                      bool
}

// certificate returns the link to a request's certificate and the
// person's view of it; both empty when it has none.
func (p *Portal) certificate(ctx context.Context, b *i18n.Bundle, requestID string) (string, *certView, error) {
	c, err := p.store.Certificate(ctx, requestID)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	link := certificateLink(c.ID)
	view, err := p.certView(b, c, link)
	if err != nil {
		// The link still opens the certificate on the auditor page.
		p.logError("read a certificate for its status page", requestID, err)
		return link, nil, nil
	}
	return link, view, nil
}

func (p *Portal) certView(b *i18n.Bundle, c store.Certificate, link string) (*certView, error) {
	doc, err := certificate.ParseDocument(c.Document)
	if err != nil {
		return nil, err
	}
	pl, err := doc.UnverifiedPayload()
	if err != nil {
		return nil, err
	}
	issued, err := time.Parse(time.RFC3339Nano, pl.IssuedAt)
	if err != nil {
		return nil, fmt.Errorf("certificate issued_at: %w", err)
	}
	v := &certView{ID: pl.CertificateID, Link: link,
		Issued: b.T("cert.intro", "date", day(b, issued), "org", p.org)}
	if pl.DeadlineMet {
		v.Deadline = b.T("cert.deadline.met")
	} else if due, err := time.Parse(time.RFC3339Nano, pl.DueAt); err == nil {
		v.Deadline = b.T("cert.deadline.missed", "date", day(b, due))
	}
	j := erasure.Jurisdiction(pl.Jurisdiction)
	for _, s := range pl.Systems {
		on := ""
		if t, err := time.Parse(time.RFC3339Nano, s.CompletedAt); err == nil {
			on = day(b, t)
		}
		line := certSystem{Name: p.systemName(s.Connector)}
		switch s.Outcome {
		case string(erasure.TaskErased):
			line.Outcome = b.T("cert.erased", "date", on, "records", strconv.FormatInt(s.RecordsErased.N, 10))
			if s.RecordsErased.Unknown {
				line.Outcome = b.T("cert.erased.uncounted", "date", on)
			}
		case string(erasure.TaskNotFound):
			line.Outcome = b.T("cert.not_found", "date", on)
		case string(erasure.TaskExempted):
			line.Kept = true
			line.Outcome = b.T("cert.exempted", "basis", basisText(b, j, s.ExemptionBasis))
		case string(erasure.TaskNotApplicable):
			line.Outcome = b.T("cert.not_applicable", "reason", s.NotApplicableReason)
		default:
			line.Outcome = s.Outcome
		}
		if s.Outcome == string(erasure.TaskErased) {
			switch s.Verification {
			case "clean":
				line.Afterwards = b.T("cert.after.clean")
			case "not_available":
				line.Afterwards = b.T("cert.after.not_available")
			case "lookup_failed":
				line.Afterwards = b.T("cert.after.failed")
			}
		}
		v.Systems = append(v.Systems, line)
	}
	return v, nil
}

// basisText says a legal basis in the page's language. The certificate
// records the basis in the law's English words (or, before those, its
// code); a basis the texts do not know is shown as recorded.
func basisText(b *i18n.Bundle, j erasure.Jurisdiction, recorded string) string {
	code := recorded
	for _, c := range j.ExemptionCodes() {
		if d, _ := j.ExemptionBasis(c); d == recorded {
			code = c
		}
	}
	if t := b.T("exemption." + code); t != "exemption."+code && t != "" {
		return t
	}
	return recorded
}
