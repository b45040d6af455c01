package console

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
)

// batchView is one batch summed up: how many of its requests are over
// and how many of its systems are done, with its requests by status.
type batchView struct {
	Name                 string
	Requests, Final      int
	Systems, Done        int
	Waiting, Overdue     int
	ByStatus             []statusCount
	FirstAt, LastAt      string
	Link                 string
	FinalPct, SystemsPct int
}

type statusCount struct {
	Status string
	N      int
}

func viewBatch(b store.Batch) batchView {
	v := batchView{Name: b.Name, Requests: b.Requests, Final: b.Final(), Systems: b.Tasks.Systems, Done: b.Tasks.Done,
		Waiting: b.Tasks.WaitingForPerson, Overdue: b.Overdue, FirstAt: when(b.FirstReceived), LastAt: when(b.LastReceived),
		Link: "/console?" + url.Values{"batch": {b.Name}}.Encode()}
	if v.Requests > 0 {
		v.FinalPct = v.Final * 100 / v.Requests
	}
	if v.Systems > 0 {
		v.SystemsPct = v.Done * 100 / v.Systems
	}
	for _, st := range allStatuses {
		if n := b.ByStatus[st]; n > 0 {
			v.ByStatus = append(v.ByStatus, statusCount{Status: string(st), N: n})
		}
	}
	return v
}

// batch reads one batch for the list filtered by it; a name no request
// carries is not_found.
func (c *Console) batch(ctx context.Context, name string) (*batchView, error) {
	b, err := c.store.Batch(ctx, name, c.clock())
	if errors.Is(err, store.ErrNotFound) {
		return nil, erasure.Errorf(erasure.ENotFound, "no request was filed in batch %s", name)
	}
	if err != nil {
		return nil, err
	}
	v := viewBatch(b)
	return &v, nil
}

// maxBatches is how many batches the batches page lists, newest first.
const maxBatches = 100

// Batches lists the newest batches (requests filed together by POST
// /v1/requests/batch or `lethe request import`), each with its progress:
// GET /console/batches. A batch's requests are the list filtered by it.
func (c *Console) Batches() http.Handler {
	return c.authed(canRead, func(w http.ResponseWriter, r *http.Request, s session) {
		bs, err := c.store.Batches(r.Context(), maxBatches, c.clock())
		if err != nil {
			c.internalError(w, r, &s, err)
			return
		}
		views := make([]batchView, len(bs))
		for i, b := range bs {
			views[i] = viewBatch(b)
		}
		c.render(w, r, http.StatusOK, "batches", pageData{Title: "Batches", Content: views}.withSession(&s))
	})
}
