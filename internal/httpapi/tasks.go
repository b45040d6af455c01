package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/coordinator"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"go.uber.org/zap"
)

type completeBody struct {
	Outcome  string             `json:"outcome"`
	Records  int64              `json:"records"`
	Evidence []erasure.Evidence `json:"evidence"`
	Reason   string             `json:"reason"`
}

// completeTask records that a person finished a task by hand, with evidence.
func (s *server) completeTask() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := requestID(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		var body completeBody
		if err := decode(w, r, &body); err != nil {
			s.fail(w, r, err)
			return
		}
		_, err = s.Coordinator.CompleteTask(r.Context(), id, r.PathValue("connector"), principalFrom(r).Actor(), coordinator.Completion{
			Outcome: body.Outcome, Records: body.Records, Evidence: body.Evidence, Reason: body.Reason})
		s.answerWithRequest(w, r, id, http.StatusOK, err)
	})
}

const maxCallback = 1 << 20

// connectorCallback takes a vendor's report about a job. It needs no API
// token: the connector authenticates the callback (a signature over the raw
// body) before anything in it is trusted.
func (s *server) connectorCallback() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		cb, ok := s.Callbacks[name]
		if !ok {
			s.fail(w, r, erasure.Errorf(erasure.ENotFound, "no connector %q takes callbacks", truncateID(name)))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCallback))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				s.fail(w, r, erasure.Errorf(erasure.ETooLarge, "the callback is larger than %d bytes", maxCallback))
				return
			}
			s.fail(w, r, erasure.Errorf(erasure.EInvalid, "cannot read the callback"))
			return
		}
		got, err := cb.Callback(r.Context(), r.Header, body)
		if err != nil {
			s.Log.Warn("callback refused", zap.String("connector", name), zap.Error(err))
			s.fail(w, r, erasure.Errorf(erasure.EForbidden, "the callback could not be authenticated"))
			return
		}
		applied, err := s.applyCallback(r.Context(), name, got)
		if err != nil {
			if erasure.ErrorCode(err) == erasure.EConflict {
				s.Log.Warn("callback refused: a replay", zap.String("connector", name))
			}
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"status": string(applied)})
	})
}

// applyCallback records an authenticated callback once: a second with the
// same ID is an EConflict (a replay) and changes nothing. One about a job
// no task has recorded yet is EUnavailable (coordinator.CallbackTask) and
// is not remembered, so that it can be sent again; one about an earlier
// attempt's job is stale, and not remembered either (nothing was recorded
// for it to be a replay of).
func (s *server) applyCallback(ctx context.Context, name string, got connectors.Callback) (coordinator.Applied, error) {
	task, err := s.Coordinator.CallbackTask(ctx, name, got.JobRef)
	if err != nil {
		return "", err
	}
	if coordinator.Superseded(task, got.JobRef) {
		return coordinator.AppliedStale, nil
	}
	if err := s.rememberCallback(ctx, name, got.ID); err != nil {
		return "", err
	}
	out := got.Outcome
	return s.Coordinator.ApplyCallback(ctx, task, got.JobRef, string(out.Status), out.Records, out.Status == connectors.StatusErased && out.Uncounted, out.Evidence)
}

func (s *server) approveRequest() http.Handler {
	return s.action(http.StatusOK, func(ctx context.Context, id, actor, reason string, _ *http.Request) error {
		_, err := s.Coordinator.Approve(ctx, id, actor, reason)
		return err
	})
}

func (s *server) denyRequest() http.Handler {
	return s.action(http.StatusOK, func(ctx context.Context, id, actor, reason string, _ *http.Request) error {
		_, err := s.Coordinator.Deny(ctx, id, actor, reason)
		return err
	})
}

type extendBody struct {
	Reason   string    `json:"reason"`
	Category string    `json:"category"`
	DueAt    time.Time `json:"due_at"`
}

func (s *server) extendRequest() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := requestID(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		var body extendBody
		if err := decode(w, r, &body); err != nil {
			s.fail(w, r, err)
			return
		}
		if body.DueAt.IsZero() {
			s.fail(w, r, erasure.Invalid("due_at", "is required: the new deadline, RFC 3339"))
			return
		}
		_, err = s.Coordinator.Extend(r.Context(), id, principalFrom(r).Actor(), body.Reason, body.Category, body.DueAt)
		s.answerWithRequest(w, r, id, http.StatusOK, err)
	})
}

type exemptBody struct {
	Reason string `json:"reason"`
	Basis  string `json:"basis"`
}

func (s *server) exemptTask() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := requestID(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		var body exemptBody
		if err := decode(w, r, &body); err != nil {
			s.fail(w, r, err)
			return
		}
		_, err = s.Coordinator.Exempt(r.Context(), id, r.PathValue("connector"), body.Basis, principalFrom(r).Actor(), body.Reason)
		s.answerWithRequest(w, r, id, http.StatusOK, err)
	})
}

type identifiersBody struct {
	Identifiers map[erasure.Kind]string `json:"identifiers"`
	Reason      string                  `json:"reason"`
}

// addIdentifiers adds identifiers staff found for the person.
func (s *server) addIdentifiers() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := requestID(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		var body identifiersBody
		if err := decode(w, r, &body); err != nil {
			s.fail(w, r, err)
			return
		}
		_, err = s.Coordinator.AddIdentifiers(r.Context(), id, principalFrom(r).Actor(), body.Reason, body.Identifiers)
		s.answerWithRequest(w, r, id, http.StatusOK, err)
	})
}

// notApplicable declares a system not applicable to the person.
func (s *server) notApplicable() http.Handler {
	return s.action(http.StatusOK, func(ctx context.Context, id, actor, reason string, r *http.Request) error {
		_, err := s.Coordinator.NotApplicable(ctx, id, r.PathValue("connector"), actor, reason)
		return err
	})
}

// rememberCallback records that the signed callback id was received, in
// the store every replica shares, and refuses it (EConflict) if it was
// received before: a captured callback replayed, to this replica or
// another, changes nothing. It is remembered before it is applied, so two
// copies racing each other cannot both be applied; if applying then fails,
// the next poll brings the same news. Entries are forgotten with idle
// throttles (store.ThrottleIdle, longer than any callback_max_age).
func (s *server) rememberCallback(ctx context.Context, connector, id string) error {
	if id == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(connector + "\x00" + id))
	key := "callback:" + hex.EncodeToString(sum[:])
	now := s.Clock()
	return s.Store.InTx(ctx, func(tx store.Tx) error {
		th, err := tx.LockThrottle(ctx, key)
		if err != nil {
			return err
		}
		if th.Failures > 0 {
			return erasure.Errorf(erasure.EConflict, "this signed callback was received before: a replay changes nothing")
		}
		th.Failures, th.LastAt, th.UpdatedAt = 1, now, now
		return tx.UpdateThrottle(ctx, th)
	})
}
