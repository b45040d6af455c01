package portal

import (
	"context"
	"crypto/hmac"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/i18n"
	"github.com/lethe-dev/lethe/internal/store"
	"go.uber.org/zap"
)

// What the confirmation page shows.
const (
	stateOpen   = "open"   // waiting for the code
	stateUsed   = "used"   // confirmed before
	stateClosed = "closed" // ended before it was confirmed (expired, denied)
)

type verifyPage struct {
	base
	State        string
	Intro        string
	Action       string
	ResendAction string
	Code         string
	Error        string
	Sent         bool
}

// lookup reads a portal request. A purged request gives its purge record
// (the token is ours, but nothing else is left); an unknown one, or one not
// filed on the portal, gives store.ErrNotFound.
func (p *Portal) lookup(ctx context.Context, id string) (erasure.Request, store.PortalRequest, *store.Purge, error) {
	req, err := p.store.Request(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		purge, perr := p.store.Purge(ctx, id)
		if perr != nil {
			return req, store.PortalRequest{}, nil, perr
		}
		return req, store.PortalRequest{}, &purge, nil
	}
	if err != nil {
		return req, store.PortalRequest{}, nil, err
	}
	pr, err := p.store.PortalRequest(ctx, id)
	return req, pr, nil, err
}

// failed answers a lookup error: the same 404 for anything unknown.
func (p *Portal) failed(w http.ResponseWriter, r *http.Request, id string, err error) {
	if errors.Is(err, store.ErrNotFound) {
		p.notFound(w, r)
		return
	}
	p.serverError(w, r, "", "read a portal request", id, err)
}

func verifyState(req erasure.Request, pr store.PortalRequest, purged bool) string {
	switch {
	case purged:
		return stateClosed
	case !pr.VerifiedAt.IsZero():
		return stateUsed
	case req.Status == erasure.RequestUnverified:
		return stateOpen
	}
	return stateClosed
}

func (p *Portal) renderVerify(w http.ResponseWriter, r *http.Request, b *i18n.Bundle, status int, tok string, page verifyPage) {
	page.base = p.base(w, r, b, "verify.heading")
	page.Intro = b.T("verify.intro", "minutes", strconv.Itoa(int(p.cfg.CodeTTL.Minutes())))
	page.Action = withLang(verifyPath(tok), b)
	page.ResendAction = withLang(resendPath(tok), b)
	p.render(w, status, "verify", page)
}

// VerifyPage shows the form for the emailed code: GET
// /portal/verify/{token}. The link in the email fills the code in from
// ?code=; like every GET it changes nothing, the person still confirms.
func (p *Portal) VerifyPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.PathValue("token")
		id, ok := p.parseToken(purposeVerify, tok)
		if !ok {
			p.notFound(w, r)
			return
		}
		req, pr, purge, err := p.lookup(r.Context(), id)
		if err != nil {
			p.failed(w, r, id, err)
			return
		}
		b := p.bundle(r, pr.Lang)
		page := verifyPage{State: verifyState(req, pr, purge != nil), Sent: r.URL.Query().Get("sent") == "1"}
		if page.State == stateOpen {
			if code, ok := normalizeCode(r.URL.Query().Get("code")); ok {
				page.Code = code
			}
			if p.spent(pr) {
				page.Error = b.T("verify.error.spent")
			}
		}
		p.renderVerify(w, r, b, http.StatusOK, tok, page)
	})
}

// spent reports whether the current code can no longer be used.
func (p *Portal) spent(pr store.PortalRequest) bool {
	return pr.CodeAttempts >= p.cfg.CodeAttempts || !p.now().Before(pr.CodeExpiresAt)
}

// Outcomes of checking a code.
type verdict int

const (
	verdictMissing verdict = iota // no portal request
	verdictOK
	verdictWrong
	verdictSpent    // expired, or out of tries
	verdictUsed     // confirmed before, and this code does not (or no longer) open the status
	verdictClosed   // the request ended before it was confirmed
	verdictNotSent  // no code was emailed for the request: none is tried
	verdictReplaced // a newer code went to the same address
	verdictSlow     // too many wrong codes for the address: wait
)

// Verify checks the emailed code: POST /portal/verify/{token}. The right
// code moves the request on (to approval or to work) and leads to the
// status page; a wrong one uses up one try.
func (p *Portal) Verify() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.readForm(w, r) {
			return
		}
		tok := r.PathValue("token")
		id, ok := p.parseToken(purposeVerify, tok)
		if !ok {
			p.notFound(w, r)
			return
		}
		b := p.bundle(r, "")
		code, wellFormed := normalizeCode(r.PostForm.Get("code"))
		if !wellFormed {
			// It cannot be the code: no try is used up.
			req, pr, purge, err := p.lookup(r.Context(), id)
			if err != nil {
				p.failed(w, r, id, err)
				return
			}
			page := verifyPage{State: verifyState(req, pr, purge != nil)}
			if page.State == stateOpen {
				page.Error = b.T("verify.error.format")
			}
			p.renderVerify(w, r, b, http.StatusUnprocessableEntity, tok, page)
			return
		}
		if !p.perClient.allow(p.clientKey(r), p.clock()) {
			w.Header().Set("Retry-After", strconv.Itoa(p.perClient.retryAfter()))
			p.message(w, r, http.StatusTooManyRequests, "", "portal.error.too_many")
			return
		}
		var v verdict
		left := 0
		var wait time.Duration
		prove := func(ctx context.Context, tx store.Tx, req erasure.Request) (bool, error) {
			v, left, wait = verdictMissing, 0, 0
			pr, err := tx.LockPortal(ctx, req.ID)
			if errors.Is(err, store.ErrNotFound) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			verified := !pr.VerifiedAt.IsZero()
			if !verified && req.Status != erasure.RequestUnverified {
				v = verdictClosed
				return false, nil
			}
			if p.spent(pr) {
				v = verdictSpent
				if verified {
					v = verdictUsed
				}
				return false, nil
			}
			// Until the request is confirmed, a code is only tried if it
			// was emailed, is the last one sent to its address, and the
			// address is not waiting out its wrong guesses.
			var th store.Throttle
			if !verified {
				if pr.CodeSentAt.IsZero() {
					v = verdictNotSent
					return false, nil
				}
				key := p.addressKey(req)
				if key == "" {
					v = verdictNotSent
					return false, nil
				}
				th, err = tx.LockThrottle(ctx, key)
				if err != nil {
					return false, err
				}
				if th.Ref != req.ID {
					v = verdictReplaced
					return false, nil
				}
				if wait = p.guesses.Wait(th, p.now()); wait > 0 {
					v = verdictSlow
					return false, nil
				}
			}
			if !hmac.Equal([]byte(p.codeHash(req.ID, code)), []byte(pr.CodeHash)) {
				pr.CodeAttempts++
				if err := tx.UpdatePortalRequest(ctx, pr); err != nil {
					return false, err
				}
				if !verified {
					p.guesses.Fail(&th, p.now())
					if err := tx.UpdateThrottle(ctx, th); err != nil {
						return false, err
					}
				}
				left = p.cfg.CodeAttempts - pr.CodeAttempts
				switch {
				case verified:
					v = verdictUsed
				case left <= 0:
					v = verdictSpent
				default:
					v = verdictWrong
				}
				return false, nil
			}
			if !verified {
				pr.VerifiedAt = p.now()
				if err := tx.UpdatePortalRequest(ctx, pr); err != nil {
					return false, err
				}
				// The address is proven theirs: its wrong guesses are
				// forgotten.
				th.Failures, th.LastAt, th.UpdatedAt = 0, time.Time{}, p.now()
				if err := tx.UpdateThrottle(ctx, th); err != nil {
					return false, err
				}
			}
			v = verdictOK
			return true, nil
		}
		req, proven, err := p.coord.Verified(r.Context(), id, p.cfg.RequireApproval, prove)
		if errors.Is(err, store.ErrNotFound) {
			// Purged, or never ours: the same answer as the page's GET.
			_, perr := p.store.Purge(r.Context(), id)
			switch {
			case perr == nil:
				p.renderVerify(w, r, b, http.StatusOK, tok, verifyPage{State: stateClosed})
			case erasure.ErrorCode(perr) == erasure.EUnavailable:
				p.serverError(w, r, "", "read a purged portal request", id, perr)
			default:
				p.notFound(w, r)
			}
			return
		}
		if err != nil {
			p.serverError(w, r, "", "verify a portal request", id, err)
			return
		}
		switch {
		case proven && v == verdictOK:
			p.log.Info("portal request verified", zap.String("request_id", id), zap.String("status", string(req.Status)))
			redirect(w, r, withLang(statusPath(p.token(purposeStatus, id)), b))
		case v == verdictWrong:
			p.renderVerify(w, r, b, http.StatusUnprocessableEntity, tok, verifyPage{State: stateOpen,
				Error: b.T("verify.error.wrong", "left", strconv.Itoa(left))})
		case v == verdictSpent:
			p.renderVerify(w, r, b, http.StatusUnprocessableEntity, tok, verifyPage{State: stateOpen, Error: b.T("verify.error.spent")})
		case v == verdictNotSent:
			p.renderVerify(w, r, b, http.StatusConflict, tok, verifyPage{State: stateOpen, Error: b.T("verify.error.not_sent")})
		case v == verdictReplaced:
			p.renderVerify(w, r, b, http.StatusConflict, tok, verifyPage{State: stateOpen, Error: b.T("verify.error.replaced")})
		case v == verdictSlow:
			p.log.Info("portal code refused: too many wrong codes for the address", zap.String("request_id", id),
				zap.Duration("wait", wait))
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			p.renderVerify(w, r, b, http.StatusTooManyRequests, tok, verifyPage{State: stateOpen,
				Error: b.T("verify.error.slow", "minutes", strconv.Itoa(int(math.Ceil(wait.Minutes()))))})
		case v == verdictUsed:
			p.renderVerify(w, r, b, http.StatusOK, tok, verifyPage{State: stateUsed})
		case v == verdictClosed:
			p.renderVerify(w, r, b, http.StatusOK, tok, verifyPage{State: stateClosed})
		default:
			p.notFound(w, r)
		}
	})
}

// Resend sends a new code: POST /portal/resend/{token}. The new code
// replaces the old one with fresh tries, at most once a minute per request
// and within the per-address limit. Whatever happens the answer is the
// confirmation page saying a code is on its way, so it tells nobody
// anything about the request or the address.
func (p *Portal) Resend() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.readForm(w, r) {
			return
		}
		tok := r.PathValue("token")
		id, ok := p.parseToken(purposeVerify, tok)
		if !ok {
			p.notFound(w, r)
			return
		}
		b := p.bundle(r, "")
		p.resend(r, id, b)
		redirect(w, r, withLang(verifyPath(tok), b, "sent", "1"))
	})
}

func (p *Portal) resend(r *http.Request, id string, b *i18n.Bundle) {
	ctx := r.Context()
	if !p.perAddress.allow(p.clientKey(r), p.clock()) {
		return
	}
	req, err := p.store.Request(ctx, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			p.logError("read a portal request", id, err)
		}
		return
	}
	if req.Status != erasure.RequestUnverified {
		return
	}
	if ok, err := p.mayEmail(ctx, req); err != nil || !ok {
		if err != nil {
			p.logError("count requests for the per-email limit", id, err)
		}
		return
	}
	var code string
	err = p.store.InTx(ctx, func(tx store.Tx) error {
		code = ""
		locked, err := tx.LockRequest(ctx, id)
		if err != nil {
			return err
		}
		if locked.Status != erasure.RequestUnverified {
			return nil
		}
		pr, err := tx.LockPortal(ctx, id)
		if err != nil {
			return err
		}
		// The last code was sent when its life began.
		now := p.now()
		if now.Sub(pr.CodeExpiresAt.Add(-p.cfg.CodeTTL)) < resendEvery {
			return nil
		}
		c, err := newCode()
		if err != nil {
			return err
		}
		pr.CodeHash, pr.CodeExpiresAt, pr.CodeAttempts = p.codeHash(id, c), now.Add(p.cfg.CodeTTL), 0
		pr.CodeSentAt = time.Time{} // not until it is
		if err := tx.UpdatePortalRequest(ctx, pr); err != nil {
			return err
		}
		code = c
		return nil
	})
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			p.logError("renew a verification code", id, err)
		}
		return
	}
	if code == "" {
		return
	}
	if err := p.sendCode(ctx, req.Subject.Email, b, code, p.VerifyURL(id, code), p.StatusURL(id), p.cfg.CodeTTL); err != nil {
		p.log.Warn("verification code not sent", zap.String("request_id", id), zap.String("error_code", erasure.ErrorCode(err)))
		return
	}
	p.markSent(ctx, req, code)
	p.log.Info("verification code sent again", zap.String("request_id", id))
}

// normalizeCode accepts a code typed with spaces or dashes.
func normalizeCode(s string) (string, bool) {
	if len(s) > 32 {
		return "", false
	}
	c := strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if len(c) != 6 {
		return "", false
	}
	for i := range len(c) {
		if c[i] < '0' || c[i] > '9' {
			return "", false
		}
	}
	return c, true
}
