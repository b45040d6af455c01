package httpapi

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
)

// auditRow is one request as an audit file lists it. No identifiers.
type auditRow struct {
	RequestID     string    `json:"request_id"`
	Status        string    `json:"status"`
	Jurisdiction  string    `json:"jurisdiction"`
	ReceivedAt    time.Time `json:"received_at"`
	OriginalDueAt time.Time `json:"original_due_at"` // the deadline it was received with
	DueAt         time.Time `json:"due_at"`          // the deadline now: the extended one, if extended
	// ExtendedAt and ExtensionCategory are set when the deadline was
	// extended: when, and the kind of reason.
	ExtendedAt        *time.Time `json:"extended_at,omitempty"`
	ExtensionCategory string     `json:"extension_category,omitempty"`
	CompletedAt       *time.Time `json:"completed_at,omitempty"`
	Deadline          string     `json:"deadline"` // met, missed, open or overdue
	CertificateID     string     `json:"certificate_id,omitempty"`
	CertificateURL    string     `json:"certificate_url,omitempty"`
	LogIndex          *int64     `json:"log_index,omitempty"`
}

// deadline judges a request against its legal deadline.
func deadline(r erasure.Request, now time.Time) string {
	switch {
	case r.Status.Final() && r.CompletedAt.After(r.DueAt):
		return "missed"
	case r.Status.Final():
		return "met"
	case now.After(r.DueAt):
		return "overdue"
	}
	return "open"
}

func (s *server) auditRows(r *http.Request, reqs []erasure.Request) ([]auditRow, error) {
	ids := make([]string, len(reqs))
	for i, q := range reqs {
		ids[i] = q.ID
	}
	certs, err := s.Store.Certificates(r.Context(), ids)
	if err != nil {
		return nil, err
	}
	now := s.Clock()
	rows := make([]auditRow, 0, len(reqs))
	for _, q := range reqs {
		row := auditRow{RequestID: q.ID, Status: string(q.Status), Jurisdiction: string(q.Jurisdiction),
			ReceivedAt: q.ReceivedAt, OriginalDueAt: q.FirstDueAt(), DueAt: q.DueAt, ExtendedAt: timePtr(q.ExtendedAt),
			ExtensionCategory: q.ExtensionCategory, CompletedAt: timePtr(q.CompletedAt), Deadline: deadline(q, now)}
		if c, ok := certs[q.ID]; ok {
			idx := c.LogIndex
			row.CertificateID, row.CertificateURL, row.LogIndex = c.ID, "/v1/certificates/"+c.ID, &idx
		}
		rows = append(rows, row)
	}
	return rows, nil
}

type searchBody struct {
	Email string `json:"email"`
	Phone string `json:"phone"`
}

// searchSubject finds the requests about a person from an email or phone
// an auditor types in. The identifier is normalised and hashed with the
// organisation's key on the fly; it is never stored or logged.
func (s *server) searchSubject() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body searchBody
		if err := decode(w, r, &body); err != nil {
			s.fail(w, r, err)
			return
		}
		if body.Email == "" && body.Phone == "" {
			s.fail(w, r, erasure.Invalid("email", "give an email or a phone number"))
			return
		}
		hashes, err := s.keyedHashes(erasure.Subject{Email: body.Email, Phone: body.Phone})
		if err != nil {
			s.fail(w, r, err)
			return
		}
		reqs, err := s.Store.RequestsBySubjectHash(r.Context(), hashes)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		rows, err := s.auditRows(r, reqs)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"results": rows})
	})
}

// keyedHashes normalises identifiers typed in by a person and hashes them
// with the organisation's key. The identifiers go no further.
func (s *server) keyedHashes(subj erasure.Subject) ([]string, error) {
	subj, err := subj.Normalize()
	if err != nil {
		return nil, err
	}
	var hashes []string
	for _, id := range s.Hasher.Ref(subj).Identifiers {
		hashes = append(hashes, id.Hash)
	}
	return hashes, nil
}

const maxExport = 100_000

// exportRequests lists the requests received in a date range with their
// deadlines and certificates, as JSON or CSV for an audit file.
func (s *server) exportRequests() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		from, err := dateParam(q.Get("from"), "from")
		if err != nil {
			s.fail(w, r, err)
			return
		}
		to, err := dateParam(q.Get("to"), "to")
		if err != nil {
			s.fail(w, r, err)
			return
		}
		to = to.AddDate(0, 0, 1) // the whole last day
		if !to.After(from) {
			s.fail(w, r, erasure.Invalid("to", "must not be before from"))
			return
		}
		format := q.Get("format")
		if format == "" {
			format = "json"
		}
		if format != "json" && format != "csv" {
			s.fail(w, r, erasure.Invalid("format", "must be json or csv"))
			return
		}
		var reqs []erasure.Request
		f := store.RequestFilter{ReceivedFrom: from, ReceivedTo: to, Limit: store.MaxLimit}
		for {
			page, err := s.Store.Requests(r.Context(), f)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			reqs = append(reqs, page...)
			if len(page) < f.Limit {
				break
			}
			if len(reqs) >= maxExport {
				s.fail(w, r, erasure.Invalid("from", "more than %d requests: export a shorter range", maxExport))
				return
			}
			f.Before = page[len(page)-1].ID
		}
		rows, err := s.auditRows(r, reqs)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		name := "lethe-requests-" + q.Get("from") + "-to-" + q.Get("to") + "." + format
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		if format == "json" {
			writeJSON(w, http.StatusOK, map[string]any{"from": q.Get("from"), "to": q.Get("to"), "requests": rows})
			return
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"request_id", "status", "jurisdiction", "received_at", "original_due_at", "due_at",
			"extended_at", "extension_category", "completed_at", "deadline", "certificate_id", "log_index"})
		text := func(t *time.Time) string {
			if t == nil {
				return ""
			}
			return t.Format(time.RFC3339)
		}
		for _, row := range rows {
			logIndex := ""
			if row.LogIndex != nil {
				logIndex = strconv.FormatInt(*row.LogIndex, 10)
			}
			_ = cw.Write([]string{row.RequestID, row.Status, row.Jurisdiction, row.ReceivedAt.Format(time.RFC3339),
				row.OriginalDueAt.Format(time.RFC3339), row.DueAt.Format(time.RFC3339), text(row.ExtendedAt), row.ExtensionCategory,
				text(row.CompletedAt), row.Deadline, row.CertificateID, logIndex})
		}
		cw.Flush()
	})
}

func dateParam(v, name string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return t, erasure.Invalid(name, "must be a date such as 2026-01-31")
	}
	return t, nil
}
