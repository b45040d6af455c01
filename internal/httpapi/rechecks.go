package httpapi

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/translog"
)

// followUpView is a re-check or re-erasure of a completed request.
type followUpView struct {
	Connector string `json:"connector"`
	// Kind is recheck (a look-up, nothing erased) or reerase (the erasure
	// of a person a re-check found again).
	Kind string `json:"kind"`
	// After is the age of the request it is for ("72h"); Day says it for
	// people ("day 3").
	After string `json:"after"`
	Day   string `json:"day"`
	// Status: scheduled (DueAt says when), queued or dispatched (under
	// way), not_found (re-checked clean), found_again, erased, dead (gave
	// up: the request is flagged), not_applicable (could not run).
	Status        string             `json:"status"`
	DueAt         *time.Time         `json:"due_at,omitempty"`
	Attempts      int                `json:"attempts"`
	Records       int64              `json:"records,omitempty"`
	LastError     string             `json:"last_error,omitempty"`
	Reason        string             `json:"reason,omitempty"`
	Evidence      []erasure.Evidence `json:"evidence"`
	CompletedAt   *time.Time         `json:"completed_at,omitempty"`
	NextAttemptAt *time.Time         `json:"next_attempt_at,omitempty"`
}

func followUpViews(fs []erasure.Task) []followUpView {
	var out []followUpView
	for _, t := range fs {
		kind, after, ok := t.FollowUp()
		if !ok {
			continue
		}
		ev := t.Evidence
		if ev == nil {
			ev = []erasure.Evidence{}
		}
		v := followUpView{Connector: t.Connector, Kind: kind, After: erasure.FormatAge(after), Day: erasure.AgeDay(after),
			Status: string(t.Status), Attempts: t.Attempt, LastError: t.LastError, Reason: t.Reason, Evidence: ev,
			CompletedAt: timePtr(t.CompletedAt)}
		if t.Status == erasure.TaskScheduled {
			v.DueAt = timePtr(t.NextAttemptAt)
		} else {
			v.NextAttemptAt = timePtr(t.NextAttemptAt)
		}
		if t.Status == erasure.TaskErased || t.Status == erasure.TaskFoundAgain {
			v.Records = t.RecordsErased
		}
		out = append(out, v)
	}
	return out
}

// detail is a request as GET /v1/requests/{id} shows it: with its tasks
// and its follow-ups.
func (s *server) detail(r *http.Request, req erasure.Request) (requestView, error) {
	tasks, err := s.Store.Tasks(r.Context(), req.ID)
	if err != nil {
		return requestView{}, err
	}
	v := s.view(r, req, tasks)
	fs, err := s.Store.FollowUps(r.Context(), req.ID)
	if err != nil {
		return requestView{}, err
	}
	v.Rechecks = followUpViews(fs)
	return v, nil
}

func (s *server) clearFlag() http.Handler {
	return s.action(http.StatusOK, func(ctx context.Context, id, actor, reason string, r *http.Request) error {
		_, err := s.Coordinator.ClearFlag(ctx, id, actor, reason)
		return err
	})
}

// recheckView is one re-check leaf of a certificate with its inclusion
// proof in the tree of Size leaves.
type recheckView struct {
	Index    int64                   `json:"index"`
	LeafData string                  `json:"leaf_data"` // base64
	Recheck  translog.RecheckEvent   `json:"recheck"`
	Proof    translog.InclusionProof `json:"proof"`
}

// certificateRechecks lists the transparency-log leaves that re-check a
// certificate, each with its inclusion proof in the tree of ?size= leaves
// (default: the latest checkpoint's), so that a verifier holding a signed
// checkpoint of that size checks them without trusting this server.
func (s *server) certificateRechecks() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.certificateByID(r, r.PathValue("id"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		size := int64(-1)
		if r.URL.Query().Has("size") {
			if size, err = int64Param(r, "size"); err != nil {
				s.fail(w, r, err)
				return
			}
		} else {
			cp, err := s.Store.LatestCheckpoint(r.Context())
			if err != nil {
				s.fail(w, r, fmt.Errorf("latest checkpoint: %w", err))
				return
			}
			size = cp.Size
		}
		es, err := s.Store.LogEntriesByRef(r.Context(), translog.KindRecheck, c.ID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out := struct {
			CertificateID string        `json:"certificate_id"`
			Size          int64         `json:"size"`
			Rechecks      []recheckView `json:"rechecks"`
		}{CertificateID: c.ID, Size: size, Rechecks: []recheckView{}}
		for _, e := range es {
			if e.Index >= size {
				break // not yet in a checkpoint of that size
			}
			ev, err := translog.ParseRecheckLeaf(e.Data)
			if err != nil {
				s.fail(w, r, fmt.Errorf("re-check leaf %d: %w", e.Index, err))
				return
			}
			p, err := s.LogReader.Inclusion(r.Context(), e.Index, size)
			if err != nil {
				s.fail(w, r, erasure.Errorf(erasure.EInvalid, "%s", err))
				return
			}
			out.Rechecks = append(out.Rechecks, recheckView{Index: e.Index, LeafData: base64.StdEncoding.EncodeToString(e.Data), Recheck: ev, Proof: p})
		}
		w.Header().Set("Access-Control-Allow-Origin", "*")
		writeJSON(w, http.StatusOK, out)
	})
}
