package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/coordinator"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"go.uber.org/zap"
)

type createRequestBody struct {
	Subject      *erasure.Subject `json:"subject"`
	Jurisdiction string           `json:"jurisdiction"`
}

// requestView is a request as the API shows it. Subject identifiers are
// shown to roles that act on requests; auditors see the keyed hashes only.
type requestView struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	Jurisdiction string `json:"jurisdiction"`
	Source       string `json:"source"`
	CreatedBy    string `json:"created_by"`
	// Batch names the batch the request was filed in, if any.
	Batch       string             `json:"batch,omitempty"`
	ReceivedAt  time.Time          `json:"received_at"`
	DueAt       time.Time          `json:"due_at"`
	CompletedAt *time.Time         `json:"completed_at,omitempty"`
	ShreddedAt  *time.Time         `json:"shredded_at,omitempty"`
	Overdue     bool               `json:"overdue"`
	Subject     *erasure.Subject   `json:"subject,omitempty"`
	SubjectRef  erasure.SubjectRef `json:"subject_ref"`
	// CommitmentNonce (base64url) is for the data subject only: with it and
	// their email they can prove a certificate is about them.
	CommitmentNonce string `json:"commitment_nonce,omitempty"`
	// Phase is "resolve" while resolvers look the person up, then
	// "erase"; empty before the request starts.
	Phase string `json:"phase,omitempty"`
	// Identifiers lists the kinds the request has and where each came
	// from (the values are in subject, for roles that may see them).
	Identifiers     []erasure.Source `json:"identifiers"`
	OriginalDueAt   *time.Time       `json:"original_due_at,omitempty"`
	ExtensionReason string           `json:"extension_category,omitempty"`
	Tasks           []taskView       `json:"tasks,omitempty"`
	CertificateURL  string           `json:"certificate_url,omitempty"`
	// Flag asks staff to look at a completed request: a re-check found
	// the person again, or could not run. Cleared with POST …/flag/clear.
	Flag      string     `json:"flag,omitempty"`
	FlaggedAt *time.Time `json:"flagged_at,omitempty"`
	// Rechecks are the request's follow-ups after completion: re-checks
	// at the ages its systems' recheck_after names, and the re-erasures
	// of people found again (in the request itself only).
	Rechecks []followUpView `json:"rechecks,omitempty"`
}

type taskView struct {
	Connector string `json:"connector"`
	Type      string `json:"type"`
	// Phase is resolve (a look-up) or erase.
	Phase         string `json:"phase"`
	Status        string `json:"status"`
	Attempts      int    `json:"attempts"`
	RecordsErased int64  `json:"records_erased"`
	// RecordsUnknown: the system confirmed the erasure without a count.
	RecordsUnknown bool `json:"records_unknown,omitempty"`
	// SearchedBy: the kinds of identifier the system was searched (or
	// looked up) by, and where each came from.
	SearchedBy []erasure.Source `json:"searched_by"`
	// Found: the kinds a resolver supplied.
	Found []erasure.Kind `json:"found,omitempty"`
	// Reason explains a not_applicable or needs_identifier task.
	Reason        string             `json:"reason,omitempty"`
	JobRef        string             `json:"job_ref,omitempty"`
	LastError     string             `json:"last_error,omitempty"`
	NextAttemptAt *time.Time         `json:"next_attempt_at,omitempty"`
	NextPollAt    *time.Time         `json:"next_poll_at,omitempty"`
	Verification  string             `json:"verification,omitempty"`
	Evidence      []erasure.Evidence `json:"evidence"`
	UpdatedAt     time.Time          `json:"updated_at"`
	CompletedAt   *time.Time         `json:"completed_at,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (s *server) view(r *http.Request, req erasure.Request, tasks []erasure.Task) requestView {
	v := requestView{
		ID: req.ID, Status: string(req.Status), Jurisdiction: string(req.Jurisdiction), Source: req.Source,
		CreatedBy: req.CreatedBy, Batch: req.Batch, ReceivedAt: req.ReceivedAt, DueAt: req.DueAt, CompletedAt: timePtr(req.CompletedAt),
		ShreddedAt: timePtr(req.ShreddedAt),
		Overdue:    req.Overdue(s.Clock()), SubjectRef: req.SubjectRef,
		Flag: req.Flag, FlaggedAt: timePtr(req.FlaggedAt),
	}
	if canWrite(principalFrom(r).Role) && req.ShreddedAt.IsZero() {
		subject := req.Subject
		v.Subject = &subject
		if len(req.CommitmentNonce) > 0 {
			v.CommitmentNonce = base64.RawURLEncoding.EncodeToString(req.CommitmentNonce)
		}
	}
	if req.Status == erasure.RequestCompleted || req.Status == erasure.RequestCompletedWithExemptions {
		v.CertificateURL = "/v1/requests/" + req.ID + "/certificate"
	}
	v.Identifiers = req.Sources.List()
	if !req.ExtendedAt.IsZero() {
		v.OriginalDueAt, v.ExtensionReason = timePtr(req.FirstDueAt()), req.ExtensionCategory
	}
	for _, t := range tasks {
		ev := t.Evidence
		if ev == nil {
			ev = []erasure.Evidence{}
		}
		phase := erasure.PhaseErase
		if t.Phase == erasure.PhaseResolve {
			phase = erasure.PhaseResolve
		}
		if v.Phase != erasure.PhaseErase {
			v.Phase = phase
		}
		v.Tasks = append(v.Tasks, taskView{
			Connector: t.Connector, Type: t.ConnectorType, Phase: phase, Status: string(t.Status), Attempts: t.Attempt,
			RecordsErased: t.RecordsErased, RecordsUnknown: t.RecordsUnknown, SearchedBy: sourced(t.SearchedBy, req.Sources),
			Found: t.Found, Reason: t.Reason, JobRef: t.JobRef, LastError: t.LastError,
			NextAttemptAt: timePtr(t.NextAttemptAt), NextPollAt: timePtr(t.NextPollAt),
			Verification: t.Verified, Evidence: ev, UpdatedAt: t.UpdatedAt, CompletedAt: timePtr(t.CompletedAt),
		})
	}
	return v
}

// sourced pairs kinds with where the request got them.
func sourced(kinds []erasure.Kind, from erasure.Sources) []erasure.Source {
	out := make([]erasure.Source, len(kinds))
	for i, k := range kinds {
		out[i] = erasure.Source{Kind: k, From: from[k]}
	}
	return out
}

// fail writes err, logging it when it is not the caller's fault: at error
// level for a bug, at warn for a dependency that is down (the outage is
// the news, and health checks report it; each call it fails is not).
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch erasure.ErrorCode(err) {
	case erasure.EInternal:
		s.Log.Error("request failed", zap.String("route", r.Pattern), zap.Error(err))
	case erasure.EUnavailable:
		s.Log.Warn("request failed: a dependency is unavailable", zap.String("route", r.Pattern), zap.Error(err))
	}
	writeErr(w, err)
}

func (s *server) createRequest() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body createRequestBody
		if err := decode(w, r, &body); err != nil {
			s.fail(w, r, err)
			return
		}
		if body.Subject == nil {
			s.fail(w, r, erasure.Invalid("subject", "is required, e.g. {\"email\": \"…\"}"))
			return
		}
		p := principalFrom(r)
		req, created, err := s.Coordinator.File(r.Context(), coordinator.FileInput{
			Subject: *body.Subject, Jurisdiction: body.Jurisdiction, Source: "api", Actor: p.Actor(),
			IdempotencyKey: r.Header.Get("Idempotency-Key"),
		})
		if err != nil {
			s.fail(w, r, err)
			return
		}
		tasks, err := s.Store.Tasks(r.Context(), req.ID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		status := http.StatusCreated
		if !created {
			status = http.StatusOK // the same Idempotency-Key was filed before
		}
		w.Header().Set("Location", "/v1/requests/"+req.ID)
		writeJSON(w, status, s.view(r, req, tasks))
	})
}

// requestID reads and checks the {id} path value, so malformed ids are a
// clear 404 instead of a database round trip.
func requestID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !erasure.ValidID(id) {
		return "", erasure.Errorf(erasure.ENotFound, "no request with id %q", truncateID(id))
	}
	return id, nil
}

func truncateID(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func (s *server) loadRequest(w http.ResponseWriter, r *http.Request) (erasure.Request, bool) {
	id, err := requestID(r)
	if err != nil {
		s.fail(w, r, err)
		return erasure.Request{}, false
	}
	req, err := s.Store.Request(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		err = erasure.Errorf(erasure.ENotFound, "no request with id %q", id)
		if p, perr := s.Store.Purge(r.Context(), id); perr == nil {
			err = erasure.Errorf(erasure.ENotFound, "request %s was purged on %s at the end of its retention period",
				id, p.PurgedAt.Format(time.DateOnly))
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return erasure.Request{}, false
	}
	return req, true
}

func (s *server) getRequest() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, ok := s.loadRequest(w, r)
		if !ok {
			return
		}
		v, err := s.detail(r, req)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

// pageLimit reads a list's limit query parameter: 1 to 500, default 50.
func pageLimit(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return 50, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 500 {
		return 0, erasure.Invalid("limit", "must be a number from 1 to 500")
	}
	return n, nil
}

func (s *server) listRequests() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var f store.RequestFilter
		if v := q.Get("status"); v != "" {
			for _, st := range strings.Split(v, ",") {
				rs := erasure.RequestStatus(strings.TrimSpace(st))
				if !rs.Valid() {
					s.fail(w, r, erasure.Invalid("status", "unknown status %q", truncateID(string(rs))))
					return
				}
				f.Statuses = append(f.Statuses, rs)
			}
		}
		switch q.Get("flagged") {
		case "":
		case "true":
			f.Flagged = true
		default:
			s.fail(w, r, erasure.Invalid("flagged", "must be true (only requests flagged for staff), or left out"))
			return
		}
		if v := q.Get("batch"); v != "" {
			if err := erasure.CheckBatch(v); err != nil {
				s.fail(w, r, err)
				return
			}
			f.Batch = v
		}
		if v := q.Get("due_before"); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				s.fail(w, r, erasure.Invalid("due_before", "must be an RFC 3339 time such as 2026-12-31T00:00:00Z"))
				return
			}
			f.DueBefore = t
		}
		if v := q.Get("before"); v != "" {
			if !erasure.ValidID(v) {
				s.fail(w, r, erasure.Invalid("before", "must be a request id from a previous page's next"))
				return
			}
			f.Before = v
		}
		var err error
		if f.Limit, err = pageLimit(q); err != nil {
			s.fail(w, r, err)
			return
		}
		reqs, err := s.Store.Requests(r.Context(), f)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out := struct {
			Requests []requestView `json:"requests"`
			Next     string        `json:"next,omitempty"`
		}{Requests: []requestView{}}
		for _, req := range reqs {
			out.Requests = append(out.Requests, s.view(r, req, nil))
		}
		if len(reqs) == f.Limit {
			out.Next = reqs[len(reqs)-1].ID
		}
		writeJSON(w, http.StatusOK, out)
	})
}

type eventView struct {
	Seq      int64           `json:"seq"`
	Type     string          `json:"type"`
	TaskID   string          `json:"task_id,omitempty"`
	Actor    string          `json:"actor"`
	Reason   string          `json:"reason,omitempty"`
	Data     json.RawMessage `json:"data"`
	At       time.Time       `json:"at"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
}

func (s *server) listEvents() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, ok := s.loadRequest(w, r)
		if !ok {
			return
		}
		events, err := s.Store.Events(r.Context(), req.ID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out := struct {
			Events     []eventView `json:"events"`
			ChainValid bool        `json:"chain_valid"`
			ChainError string      `json:"chain_error,omitempty"`
		}{Events: make([]eventView, 0, len(events)), ChainValid: true}
		if err := erasure.VerifyChain(events); err != nil {
			out.ChainValid, out.ChainError = false, err.Error()
			s.Log.Error("event chain does not verify", zap.String("request_id", req.ID), zap.Error(err))
		}
		for _, e := range events {
			out.Events = append(out.Events, eventView{Seq: e.Seq, Type: e.Type, TaskID: e.TaskID, Actor: e.Actor,
				Reason: e.Reason, Data: e.Data, At: e.At, PrevHash: e.PrevHash, Hash: e.Hash})
		}
		writeJSON(w, http.StatusOK, out)
	})
}

func (s *server) getCertificate() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, ok := s.loadRequest(w, r)
		if !ok {
			return
		}
		c, err := s.Store.Certificate(r.Context(), req.ID)
		if errors.Is(err, store.ErrNotFound) {
			s.fail(w, r, erasure.Errorf(erasure.ENotFound,
				"no certificate yet: it is issued when every system has finished; the request is %s", req.Status))
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Disposition", `attachment; filename="certificate-`+req.ID+`.json"`)
		_, _ = w.Write(c.Document)
	})
}

type reasonBody struct {
	Reason string `json:"reason"`
}

func (s *server) cancelRequest() http.Handler {
	return s.action(http.StatusOK, func(ctx context.Context, id, actor, reason string, r *http.Request) error {
		_, err := s.Coordinator.Cancel(ctx, id, actor, reason)
		return err
	})
}

func (s *server) shredRequest() http.Handler {
	return s.action(http.StatusOK, func(ctx context.Context, id, actor, reason string, r *http.Request) error {
		_, err := s.Coordinator.Shred(ctx, id, actor, reason)
		return err
	})
}

func (s *server) retryTask() http.Handler {
	return s.action(http.StatusAccepted, func(ctx context.Context, id, actor, reason string, r *http.Request) error {
		_, err := s.Coordinator.RetryTask(ctx, id, r.PathValue("connector"), actor, reason)
		return err
	})
}

// action is a staff action on a request: it takes {"reason"}, runs do, and
// answers with the request as it now stands.
func (s *server) action(status int, do func(ctx context.Context, id, actor, reason string, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := requestID(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		var body reasonBody
		if err := decode(w, r, &body); err != nil {
			s.fail(w, r, err)
			return
		}
		s.answerWithRequest(w, r, id, status, do(r.Context(), id, principalFrom(r).Actor(), body.Reason, r))
	})
}

// answerWithRequest ends a staff action: the error if it failed, else the
// request as it now stands.
func (s *server) answerWithRequest(w http.ResponseWriter, r *http.Request, id string, status int, err error) {
	if errors.Is(err, store.ErrNotFound) {
		err = erasure.Errorf(erasure.ENotFound, "no request with id %q", id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req, ok := s.loadRequest(w, r)
	if !ok {
		return
	}
	v, err := s.detail(r, req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, status, v)
}
