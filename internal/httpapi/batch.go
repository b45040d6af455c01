package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/lethe-dev/lethe/internal/coordinator"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
)

// MaxBatch is how many people one POST /v1/requests/batch may file.
const MaxBatch = 1000

// maxBatchBody caps a batch's body: a thousand items of a few hundred bytes.
const maxBatchBody = 1 << 20

// batchBody is POST /v1/requests/batch: up to MaxBatch requests, each
// with its own idempotency key so that the whole batch can be sent again
// after a timeout without filing anyone twice.
type batchBody struct {
	// Batch names the batch, to follow it as a whole (GET
	// /v1/batches/{name}, the console); sending the same name again adds
	// to it. Left out, Lethe names a new batch.
	Batch    string      `json:"batch"`
	Requests []batchItem `json:"requests"`
}

type batchItem struct {
	Subject        *erasure.Subject `json:"subject"`
	Jurisdiction   string           `json:"jurisdiction"`
	IdempotencyKey string           `json:"idempotency_key"`
}

// batchResult is what became of one item, in the order sent.
type batchResult struct {
	Index int `json:"index"`
	// Outcome is filed (a new request), existing (its key was filed
	// before: the first request), refused (the item is wrong; fix it and
	// send it again) or not_attempted (Lethe stopped before it, see the
	// error; send it again).
	Outcome       string       `json:"outcome"`
	RequestID     string       `json:"request_id,omitempty"`
	RequestStatus string       `json:"request_status,omitempty"`
	Error         *errorDetail `json:"error,omitempty"`
}

// batchView is the answer to a batch: a result per item and the totals.
type batchView struct {
	// Batch is the batch's name: the one sent, or the one Lethe made.
	Batch        string        `json:"batch"`
	Filed        int           `json:"filed"`
	Existing     int           `json:"existing"`
	Refused      int           `json:"refused"`
	NotAttempted int           `json:"not_attempted"`
	Results      []batchResult `json:"results"`
}

// createBatch files each item as POST /v1/requests would, one after the
// other, and answers 200 with a result per item: one wrong item does not
// stop the others. When Lethe itself fails (the database is down) it
// stops there and marks the rest not_attempted, since the same failure
// would refuse them too; the keys make sending them again safe.
func (s *server) createBatch() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body batchBody
		if err := decodeLimit(w, r, &body, maxBatchBody); err != nil {
			s.fail(w, r, err)
			return
		}
		switch n := len(body.Requests); {
		case n == 0:
			s.fail(w, r, erasure.Invalid("requests", "is empty: send 1 to %d requests", MaxBatch))
			return
		case n > MaxBatch:
			s.fail(w, r, erasure.Invalid("requests", "has %d items: send at most %d a batch", n, MaxBatch))
			return
		}
		if body.Batch == "" {
			body.Batch = erasure.NewBatchName()
		} else if err := erasure.CheckBatch(body.Batch); err != nil {
			s.fail(w, r, err)
			return
		}
		p := principalFrom(r)
		v := batchView{Batch: body.Batch, Results: make([]batchResult, len(body.Requests))}
		seen := make(map[string]int, len(body.Requests))
		var stopped error
		for i, item := range body.Requests {
			res := &v.Results[i]
			res.Index = i
			field := fmt.Sprintf("requests[%d]", i)
			if stopped != nil {
				res.Outcome, res.Error = "not_attempted", detail(erasure.Errorf(erasure.ErrorCode(stopped),
					"not attempted: Lethe stopped at an earlier item (%s); send this one again", erasure.ErrorMessage(stopped)), field)
				v.NotAttempted++
				continue
			}
			req, created, err := s.fileItem(r, p, body.Batch, item, field, seen, i)
			switch {
			case err == nil && created:
				res.Outcome = "filed"
				v.Filed++
			case err == nil:
				res.Outcome = "existing"
				v.Existing++
			case erasure.ErrorCode(err) == erasure.EUnavailable || erasure.ErrorCode(err) == erasure.EInternal || r.Context().Err() != nil:
				s.Log.Warn("batch stopped: an item could not be filed", zap.String("route", r.Pattern), zap.Int("item", i), zap.Error(err))
				stopped = err
				res.Outcome, res.Error = "not_attempted", detail(err, field)
				v.NotAttempted++
				continue
			default:
				res.Outcome, res.Error = "refused", detail(err, field)
				v.Refused++
				continue
			}
			res.RequestID, res.RequestStatus = req.ID, string(req.Status)
		}
		writeJSON(w, http.StatusOK, v)
	})
}

// fileItem files one item of a batch; seen maps each idempotency key to
// the first item that used it.
func (s *server) fileItem(r *http.Request, p Principal, batch string, item batchItem, field string, seen map[string]int, i int) (erasure.Request, bool, error) {
	switch first, dup := seen[item.IdempotencyKey]; {
	case item.IdempotencyKey == "":
		return erasure.Request{}, false, erasure.Invalid(field+".idempotency_key", "is required: it makes sending the batch again safe")
	case dup:
		return erasure.Request{}, false, erasure.Invalid(field+".idempotency_key", "is the key of requests[%d] too: give every item its own", first)
	case item.Subject == nil:
		return erasure.Request{}, false, erasure.Invalid(field+".subject", "is required, e.g. {\"email\": \"…\"}")
	}
	seen[item.IdempotencyKey] = i
	return s.Coordinator.File(r.Context(), coordinator.FileInput{
		Subject: *item.Subject, Jurisdiction: item.Jurisdiction, Source: "batch", Actor: p.Actor(),
		IdempotencyKey: item.IdempotencyKey, Batch: batch,
	})
}

// detail is err as an item's error, its field named under the item
// ("requests[3].subject.email").
func detail(err error, item string) *errorDetail {
	d := &errorDetail{Code: erasure.ErrorCode(err), Message: erasure.ErrorMessage(err), Field: erasure.ErrorField(err)}
	switch {
	case d.Field == "Idempotency-Key": // the coordinator names the header of POST /v1/requests
		d.Field = item + ".idempotency_key"
	case d.Field != "" && !strings.HasPrefix(d.Field, item+"."):
		d.Field = item + "." + d.Field
	}
	return d
}

// batchSummary is GET /v1/batches/{name}: how far a batch has got.
type batchSummary struct {
	Name     string `json:"name"`
	Requests int    `json:"requests"`
	// ByStatus counts its requests in each status.
	ByStatus map[string]int `json:"by_status"`
	// Final counts its requests that are over (completed, denied,
	// cancelled); Overdue, those past their deadline and not over.
	Final   int `json:"final"`
	Overdue int `json:"overdue"`
	// Systems counts the systems all its requests erase in together;
	// SystemsDone, those finished; WaitingForPerson, the tasks only staff
	// can move on.
	Systems          int       `json:"systems"`
	SystemsDone      int       `json:"systems_done"`
	WaitingForPerson int       `json:"waiting_for_person"`
	FirstReceivedAt  time.Time `json:"first_received_at"`
	LastReceivedAt   time.Time `json:"last_received_at"`
	// RequestsURL lists its requests.
	RequestsURL string `json:"requests_url"`
}

func summarize(b store.Batch) batchSummary {
	v := batchSummary{Name: b.Name, Requests: b.Requests, ByStatus: map[string]int{}, Final: b.Final(), Overdue: b.Overdue,
		Systems: b.Tasks.Systems, SystemsDone: b.Tasks.Done, WaitingForPerson: b.Tasks.WaitingForPerson,
		FirstReceivedAt: b.FirstReceived, LastReceivedAt: b.LastReceived,
		RequestsURL: "/v1/requests?batch=" + url.QueryEscape(b.Name)}
	for st, n := range b.ByStatus {
		v.ByStatus[string(st)] = n
	}
	return v
}

// getBatch answers how far one batch has got.
func (s *server) getBatch() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := erasure.CheckBatch(name); err != nil {
			s.fail(w, r, err)
			return
		}
		b, err := s.Store.Batch(r.Context(), name, s.Clock())
		if errors.Is(err, store.ErrNotFound) {
			s.fail(w, r, erasure.Errorf(erasure.ENotFound, "no request was filed in batch %s", name))
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, summarize(b))
	})
}

// listBatches answers the newest batches, each summed up.
func (s *server) listBatches() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit, err := pageLimit(r.URL.Query())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		bs, err := s.Store.Batches(r.Context(), limit, s.Clock())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out := struct {
			Batches []batchSummary `json:"batches"`
		}{Batches: []batchSummary{}}
		for _, b := range bs {
			out.Batches = append(out.Batches, summarize(b))
		}
		writeJSON(w, http.StatusOK, out)
	})
}
