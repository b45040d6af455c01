package portal

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"net/http"
	"strconv"
	"strings"

	"github.com/lethe-dev/lethe/internal/coordinator"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/i18n"
	"github.com/lethe-dev/lethe/internal/store"
	"go.uber.org/zap"
)

// formInput is what the request form holds.
type formInput struct {
	Email, Phone, Customer, Jurisdiction string
}

// fieldError is a message about one input, ID being the input's id.
type fieldError struct {
	ID, Message string
}

type choice struct {
	Value, Label string
	Checked      bool
}

type formPage struct {
	base
	formInput
	AskPhone, AskCustomer bool
	Jurisdictions         []choice
	Deadline              string
	Errors                []fieldError
	Err                   map[string]string // by input id
}

// Form shows the request form: GET /portal.
func (p *Portal) Form() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.renderForm(w, r, p.bundle(r, ""), http.StatusOK, formInput{Jurisdiction: p.cfg.DefaultJurisdiction}, nil)
	})
}

func (p *Portal) renderForm(w http.ResponseWriter, r *http.Request, b *i18n.Bundle, status int, in formInput, errs []fieldError) {
	page := formPage{
		base: p.base(w, r, b, "portal.heading"), formInput: in,
		AskPhone: p.cfg.AskPhone, AskCustomer: p.cfg.AskCustomerNumber,
		Deadline: b.T("portal.deadline." + p.cfg.DefaultJurisdiction),
		Errors:   errs, Err: map[string]string{},
	}
	for _, j := range erasure.Jurisdictions {
		page.Jurisdictions = append(page.Jurisdictions, choice{Value: string(j), Label: b.T("portal.jurisdiction." + string(j)), Checked: string(j) == in.Jurisdiction})
	}
	for _, e := range errs {
		page.Err[e.ID] = e.Message
	}
	p.render(w, status, "form", page)
}

// validate checks every field at once and returns the subject to file, or
// a friendly message per field at fault.
func (p *Portal) validate(b *i18n.Bundle, in formInput) (erasure.Subject, erasure.Jurisdiction, []fieldError) {
	var errs []fieldError
	bad := func(id, key string, kv ...string) { errs = append(errs, fieldError{ID: id, Message: b.T(key, kv...)}) }
	var s erasure.Subject
	switch email := strings.TrimSpace(in.Email); {
	case len(in.Email) > maxEmail:
		bad("email", "portal.error.too_long", "max", strconv.Itoa(maxEmail))
	case email == "":
		bad("email", "portal.error.email.required")
	default:
		if n, err := (erasure.Subject{Email: email}).Normalize(); err != nil {
			bad("email", "portal.error.email")
		} else {
			s.Email = n.Email
		}
	}
	if p.cfg.AskPhone {
		switch phone := strings.TrimSpace(in.Phone); {
		case len(in.Phone) > maxPhone:
			bad("phone", "portal.error.too_long", "max", strconv.Itoa(maxPhone))
		case phone != "":
			if n, err := (erasure.Subject{Phone: phone}).Normalize(); err != nil {
				bad("phone", "portal.error.phone")
			} else {
				s.Phone = n.Phone
			}
		}
	}
	if p.cfg.AskCustomerNumber {
		switch customer := strings.TrimSpace(in.Customer); {
		case len(in.Customer) > maxCustomer:
			bad("customer", "portal.error.too_long", "max", strconv.Itoa(maxCustomer))
		case customer != "":
			ids := map[string]string{p.cfg.CustomerSystem: customer}
			if n, err := (erasure.Subject{UserIDs: ids}).Normalize(); err != nil {
				bad("customer", "portal.error.customer")
			} else {
				s.UserIDs = n.UserIDs
			}
		}
	}
	j, err := erasure.ParseJurisdiction(in.Jurisdiction)
	if err != nil {
		bad("jurisdiction", "portal.error.jurisdiction")
	}
	return s, j, errs
}

// Submit files a request from the form: POST /portal. Whatever address is
// given, and whether or not the organisation knows it, the answer is the
// same: a redirect to the page that asks for the emailed code.
func (p *Portal) Submit() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.readForm(w, r) {
			return
		}
		b := p.bundle(r, "")
		in := formInput{Email: r.PostForm.Get("email"), Phone: r.PostForm.Get("phone"),
			Customer: r.PostForm.Get("customer"), Jurisdiction: r.PostForm.Get("jurisdiction")}
		subject, j, errs := p.validate(b, in)
		if len(errs) > 0 {
			p.renderForm(w, r, b, http.StatusUnprocessableEntity, in, errs)
			return
		}
		if !p.perAddress.allow(p.clientKey(r), p.clock()) {
			w.Header().Set("Retry-After", strconv.Itoa(p.perAddress.retryAfter()))
			p.message(w, r, http.StatusTooManyRequests, "", "portal.error.too_many")
			return
		}
		code, err := newCode()
		if err != nil {
			p.logError("make a verification code", "", err)
			p.message(w, r, http.StatusInternalServerError, "", "portal.error.generic")
			return
		}
		expires := p.now().Add(p.cfg.CodeTTL)
		req, _, err := p.coord.File(r.Context(), coordinator.FileInput{
			Subject: subject, Jurisdiction: string(j), Source: "portal", Actor: "portal",
			Hold: erasure.RequestUnverified,
			Also: func(ctx context.Context, tx store.Tx, req erasure.Request) error {
				return tx.InsertPortalRequest(ctx, store.PortalRequest{RequestID: req.ID, Lang: b.Code,
					CodeHash: p.codeHash(req.ID, code), CodeExpiresAt: expires})
			},
		})
		if err != nil {
			p.serverError(w, r, "", "file a portal request", "", err)
			return
		}
		p.deliver(r.Context(), req, b, code)
		redirect(w, r, withLang(verifyPath(p.token(purposeVerify, req.ID)), b))
	})
}

// deliver emails code for req unless the per-email limit holds it back.
//
// A request over that limit is still filed and answered exactly like any
// other (same redirect, same page, wrong codes counted, expiry by
// housekeeping); only its code is never sent. So the answer says nothing
// about how often, or by whom, the address was used before.
func (p *Portal) deliver(ctx context.Context, req erasure.Request, b *i18n.Bundle, code string) {
	ok, err := p.mayEmail(ctx, req)
	if err != nil {
		p.logError("count requests for the per-email limit", req.ID, err)
		return
	}
	if !ok {
		p.log.Info("verification code held back: per-email limit reached", zap.String("request_id", req.ID))
		return
	}
	if err := p.sendCode(ctx, req.Subject.Email, b, code, p.VerifyURL(req.ID, code), p.StatusURL(req.ID), p.cfg.CodeTTL); err != nil {
		// The error text may quote the address: log its class only.
		p.log.Warn("verification code not sent", zap.String("request_id", req.ID),
			zap.String("error_type", fmt.Sprintf("%T", err)), zap.String("error_code", erasure.ErrorCode(err)))
		return
	}
	p.markSent(ctx, req, code)
	p.log.Info("verification code sent", zap.String("request_id", req.ID))
}

// markSent records that code went out for req: from now on it may be
// tried, and it replaces every earlier code sent to the same address (the
// address's throttle points at req). A code replaced meanwhile by a resend
// is left alone.
func (p *Portal) markSent(ctx context.Context, req erasure.Request, code string) {
	key := p.addressKey(req)
	err := p.store.InTx(ctx, func(tx store.Tx) error {
		pr, err := tx.LockPortal(ctx, req.ID)
		if err != nil {
			return err
		}
		if pr.CodeHash != p.codeHash(req.ID, code) {
			return nil
		}
		now := p.now()
		pr.CodeSentAt = now
		if err := tx.UpdatePortalRequest(ctx, pr); err != nil {
			return err
		}
		th, err := tx.LockThrottle(ctx, key)
		if err != nil {
			return err
		}
		th.Ref, th.UpdatedAt = req.ID, now
		return tx.UpdateThrottle(ctx, th)
	})
	if err != nil {
		// The person has a code that will be refused; asking for a new
		// one tries again.
		p.logError("record a sent verification code", req.ID, err)
	}
}

// mayEmail reports whether req is within the per-email limit: fewer than
// PerEmailPerDay portal requests for its address came in during the day
// before it. It depends only on requests older than req, so the answer at
// filing and at every resend is the same.
func (p *Portal) mayEmail(ctx context.Context, req erasure.Request) (bool, error) {
	if req.Subject.Email == "" {
		return false, nil
	}
	ref := p.hasher.Ref(erasure.Subject{Email: req.Subject.Email})
	hashes := make([]string, len(ref.Identifiers))
	for i, id := range ref.Identifiers {
		hashes[i] = id.Hash
	}
	reqs, err := p.store.RequestsBySubjectHash(ctx, hashes)
	if err != nil {
		return false, fmt.Errorf("requests by subject hash: %w", err)
	}
	since := req.ReceivedAt.Add(-emailWindow)
	n := 0
	for _, q := range reqs {
		// Ids are time-ordered (UUIDv7): a smaller one was filed first.
		if q.Source == "portal" && q.ID < req.ID && q.ReceivedAt.After(since) {
			n++
		}
	}
	return n < p.cfg.PerEmailPerDay, nil
}

// newCode returns a random 6-digit code.
func newCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", fmt.Errorf("random code: %w", err)
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}
