package console

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
)

// maxBulk bounds how many requests one bulk action may take.
const maxBulk = 200

// maxExtendDays bounds "extend by N days"; the coordinator refuses any
// request for which the law allows less.
const maxExtendDays = 92

// bulkActions are what the list may do to several requests at once, with
// the words for one that was done.
var bulkActions = map[string]string{
	"approve": "approved",
	"retry":   "sent again to every system that gave up",
	"extend":  "deadline extended",
}

// bulkReport says what a bulk action did to each request selected.
type bulkReport struct {
	Action      string
	Done, Total int
	Items       []bulkItem
}

type bulkItem struct {
	ID      string
	OK      bool
	Message string
}

// Bulk carries out one action on the requests selected in the list: POST
// /console/bulk, fields id (repeated, at most 200), action (approve, retry
// or extend), reason, and for extend days and category; back is the
// list's query, shown again with a line per request saying what was done
// or why not. Each request is acted on by itself: one refused does not
// stop the others.
func (c *Console) Bulk() http.Handler {
	return c.authed(canAct, func(w http.ResponseWriter, r *http.Request, s session) {
		f := r.PostForm
		back, err := url.ParseQuery(f.Get("back"))
		if err != nil {
			back = url.Values{}
		}
		page := pageData{Title: "Requests"}.withSession(&s)
		fail := func(msg string) {
			page.Error = "Not done: " + msg
			c.showList(w, r, s, back, page, nil, http.StatusUnprocessableEntity)
		}
		action := f.Get("action")
		what, ok := bulkActions[action]
		if !ok {
			fail("choose what to do with the requests selected")
			return
		}
		ids := f["id"]
		switch {
		case len(ids) == 0:
			fail("select at least one request")
			return
		case len(ids) > maxBulk:
			fail("select at most " + strconv.Itoa(maxBulk) + " requests at a time")
			return
		}
		for _, id := range ids {
			if !erasure.ValidID(id) {
				fail("a selected request id is not valid")
				return
			}
		}
		if strings.TrimSpace(f.Get("reason")) == "" {
			fail("Reason: is required")
			return
		}
		days := 0
		if action == "extend" {
			days, err = strconv.Atoi(strings.TrimSpace(f.Get("days")))
			if err != nil || days < 1 || days > maxExtendDays {
				fail("Extend by: give a number of days from 1 to " + strconv.Itoa(maxExtendDays))
				return
			}
		}
		rep := &bulkReport{Action: action, Total: len(ids)}
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			err := c.bulkOne(r.Context(), id, action, s, f, days)
			switch code := erasure.ErrorCode(err); {
			case err == nil:
				rep.Done++
				rep.Items = append(rep.Items, bulkItem{ID: id, OK: true, Message: capitalise(what) + "."})
			case code == erasure.EInternal || code == erasure.EUnavailable:
				rep.Items = append(rep.Items, bulkItem{ID: id, Message: "Not done: the console could not reach its store; try again."})
				c.log.Error("console: bulk action failed", zap.String("action", action), zap.String("request_id", id), zap.Error(err))
			default:
				rep.Items = append(rep.Items, bulkItem{ID: id, Message: "Not done: " + userMessage(err)})
			}
		}
		rep.Total = len(seen)
		c.log.Info("console bulk action", zap.String("action", action), zap.Int("selected", rep.Total),
			zap.Int("done", rep.Done), zap.String("user", s.User))
		page.Flash = strconv.Itoa(rep.Done) + " of " + plural(int64(rep.Total), "request", "requests") + " " + what + "."
		c.showList(w, r, s, back, page, rep, http.StatusOK)
	})
}

// bulkOne does a bulk action to one request.
func (c *Console) bulkOne(ctx context.Context, id, action string, s session, f url.Values, days int) error {
	actor, reason := s.actor(), f.Get("reason")
	switch action {
	case "approve":
		_, err := c.coord.Approve(ctx, id, actor, reason)
		return err
	case "extend":
		req, err := c.store.Request(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return erasure.Errorf(erasure.ENotFound, "there is no such request")
		}
		if err != nil {
			return err
		}
		_, err = c.coord.Extend(ctx, id, actor, reason, f.Get("category"), req.DueAt.AddDate(0, 0, days))
		return err
	}
	if _, err := c.store.Request(ctx, id); errors.Is(err, store.ErrNotFound) {
		return erasure.Errorf(erasure.ENotFound, "there is no such request")
	}
	tasks, err := c.store.Tasks(ctx, id)
	if err != nil {
		return err
	}
	retried := 0
	for _, t := range tasks {
		if t.Status != erasure.TaskDead {
			continue
		}
		if _, err := c.coord.RetryTask(ctx, id, t.Connector, actor, reason); err != nil {
			return err
		}
		retried++
	}
	if retried == 0 {
		return erasure.Errorf(erasure.EConflict, "no system of this request gave up; there is nothing to retry")
	}
	return nil
}
