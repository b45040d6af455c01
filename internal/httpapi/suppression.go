package httpapi

import (
	"net/http"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
)

type suppressionQuery struct {
	Email  string `json:"email"`
	Phone  string `json:"phone"`
	UserID string `json:"user_id"`
	System string `json:"system"`
}

type suppressionMatch struct {
	Kind  string    `json:"kind"`
	Since time.Time `json:"since"`
}

// checkSuppression tells an importer whether a person was erased and must
// not be re-created. The identifiers (query string for GET, JSON body for
// POST, which keeps them out of proxies' access logs) are hashed with the
// organisation's key on the fly and never stored or logged.
func (s *server) checkSuppression() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var q suppressionQuery
		if r.Method == http.MethodPost {
			if err := decode(w, r, &q); err != nil {
				s.fail(w, r, err)
				return
			}
		} else {
			v := r.URL.Query()
			q = suppressionQuery{Email: v.Get("email"), Phone: v.Get("phone"), UserID: v.Get("user_id"), System: v.Get("system")}
		}
		subj := erasure.Subject{Email: q.Email, Phone: q.Phone}
		if q.UserID != "" {
			if q.System == "" {
				s.fail(w, r, erasure.Invalid("system", "is required with user_id: the system that issued it"))
				return
			}
			subj.UserIDs = map[string]string{q.System: q.UserID}
		}
		hashes, err := s.keyedHashes(subj)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		found, err := s.Store.Suppressed(r.Context(), hashes)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		matches := []suppressionMatch{}
		seen := map[string]bool{}
		for _, f := range found {
			if !seen[f.Kind] {
				seen[f.Kind] = true
				matches = append(matches, suppressionMatch{Kind: f.Kind, Since: f.CreatedAt})
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"suppressed": len(matches) > 0, "matches": matches})
	})
}
