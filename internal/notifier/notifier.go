// Package notifier emails data subjects about their portal requests: it
// consumes the notices the coordinator queues (bus.Notice, on the
// LETHE_NOTICES stream), reads the address from the request's encrypted
// envelope at the moment it sends, writes the email in the person's
// language and hands it to a notify.Mailer.
//
// Notices carry no personal data, so a request shredded or purged before
// its notice is handled is simply not emailed.
package notifier

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/i18n"
	"github.com/lethe-dev/lethe/internal/notify"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Links gives the person's private status page of a request (the portal
// derives it; nothing is stored).
type Links interface {
	StatusURL(requestID string) string
}

// Notifier sends the emails notices ask for.
type Notifier struct {
	Store   store.Store
	Mailer  notify.Mailer
	Catalog *i18n.Catalog
	Links   Links
	// BaseURL is Lethe's public address, for certificate links.
	BaseURL string
	// Org is the organisation's name, as emails sign off.
	Org string
	Log *zap.Logger
	// Attempts at sending before a temporary failure is left to
	// JetStream's redelivery (default 3).
	Attempts int
	// RetryDelay is how long a notice waits after a temporary failure
	// (default 1m).
	RetryDelay time.Duration
}

// ErrSkipped reports a notice that is not to be emailed (the request is
// gone, shredded, or has no email address); it is acknowledged.
var ErrSkipped = errors.New("notice skipped")

// permanent marks failures that a retry cannot mend.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Handle sends the email for one notice. An error wrapping ErrSkipped or
// reported by IsPermanent must not be retried; any other may be.
func (n *Notifier) Handle(ctx context.Context, nt bus.Notice) error {
	req, err := n.Store.Request(ctx, nt.RequestID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: the request is gone", ErrSkipped)
	}
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	if !req.ShreddedAt.IsZero() || req.Subject.Email == "" {
		return fmt.Errorf("%w: the request holds no email address any more", ErrSkipped)
	}
	lang := ""
	if pr, err := n.Store.PortalRequest(ctx, req.ID); err == nil {
		lang = pr.Lang
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("read portal request: %w", err)
	}
	b := n.Catalog.Get(lang)
	data := notify.Data{Org: n.Org, Due: req.DueAt}
	if n.Links != nil {
		data.Status = n.Links.StatusURL(req.ID)
	}
	var kind notify.Kind
	switch nt.Kind {
	case bus.NoticeReceived:
		kind = notify.KindReceived
	case bus.NoticeAwaitingApproval:
		kind = notify.KindAwaitingApproval
	case bus.NoticeApproved:
		kind = notify.KindApproved
	case bus.NoticeCompleted:
		kind = notify.KindCompleted
		cert, err := n.Store.Certificate(ctx, req.ID)
		if err != nil {
			return fmt.Errorf("read certificate: %w", err)
		}
		data.Certificate = strings.TrimRight(n.BaseURL, "/") + "/audit?certificate=" + url.QueryEscape(cert.ID)
		if len(req.CommitmentNonce) == 0 {
			return fmt.Errorf("%w: the request has no proof code", ErrSkipped)
		}
		data.Proof = base64.RawURLEncoding.EncodeToString(req.CommitmentNonce)
	case bus.NoticeExtended, bus.NoticeDenied:
		kind = notify.KindExtended
		if nt.Kind == bus.NoticeDenied {
			kind = notify.KindDenied
		}
		reason, err := n.reason(ctx, req.ID, nt.Kind)
		if err != nil {
			return err
		}
		data.Reason = reason
	default:
		return permanent{fmt.Errorf("unknown notice kind %q", nt.Kind)}
	}
	mail, err := notify.Compose(b, kind, req.Subject.Email, data)
	if err != nil {
		return permanent{fmt.Errorf("compose %s email: %w", nt.Kind, err)}
	}
	if err := notify.Retry(ctx, n.Mailer, mail, max(n.Attempts, 1)); err != nil {
		if notify.IsTemporary(err) {
			return fmt.Errorf("send %s email: %w", nt.Kind, err)
		}
		return permanent{fmt.Errorf("send %s email: %w", nt.Kind, err)}
	}
	return nil
}

// reason finds what the person is to be told: the reason of the latest
// extension or denial in the request's event log.
func (n *Notifier) reason(ctx context.Context, requestID, kind string) (string, error) {
	events, err := n.Store.Events(ctx, requestID)
	if err != nil {
		return "", fmt.Errorf("read events: %w", err)
	}
	for i := len(events) - 1; i >= 0; i-- {
		e := events[i]
		switch {
		case kind == bus.NoticeExtended && e.Type == erasure.EventExtended:
			return e.Reason, nil
		case kind == bus.NoticeDenied && e.Type == erasure.EventRequestStatus && statusTo(e) == string(erasure.RequestDenied):
			return e.Reason, nil
		}
	}
	return "", permanent{fmt.Errorf("no %s event in the request's log", kind)}
}

func statusTo(e erasure.Event) string {
	var d struct {
		To string `json:"to"`
	}
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return ""
	}
	return d.To
}

// IsPermanent reports whether a Handle error is one a retry cannot mend.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p) || errors.Is(err, ErrSkipped)
}

// Run handles notices from the notifier's durable consumer until ctx ends.
func (n *Notifier) Run(ctx context.Context, cons jetstream.Consumer) error {
	if n.Log == nil {
		n.Log = zap.NewNop()
	}
	if n.Attempts <= 0 {
		n.Attempts = 3
	}
	if n.RetryDelay <= 0 {
		n.RetryDelay = time.Minute
	}
	iter, err := cons.Messages(bus.PullOptions(8)...)
	if err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	go func() {
		<-ctx.Done()
		iter.Stop()
	}()
	for {
		m, err := iter.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			n.Log.Warn("notifier: fetch failed", zap.Error(err))
			continue
		}
		n.handleMsg(ctx, m)
	}
}

func (n *Notifier) handleMsg(ctx context.Context, m jetstream.Msg) {
	nt, err := bus.DecodeNotice(m.Data())
	if err != nil {
		n.Log.Error("notifier: malformed notice dropped", zap.String("subject", m.Subject()), zap.Error(err))
		_ = m.Term()
		return
	}
	log := n.Log.With(zap.String("request_id", nt.RequestID), zap.String("kind", nt.Kind))
	err = n.Handle(ctx, nt)
	switch {
	case err == nil:
		log.Info("email sent")
		_ = m.Ack()
	case errors.Is(err, ErrSkipped):
		log.Info("email not sent", zap.Error(err))
		_ = m.Ack()
	case IsPermanent(err):
		log.Error("email cannot be sent; dropped", zap.Error(err))
		_ = m.Term()
	default:
		if ctx.Err() != nil {
			return
		}
		log.Warn("email not sent yet; will retry", zap.Error(err), zap.Duration("in", n.RetryDelay))
		_ = m.NakWithDelay(n.RetryDelay)
	}
}
