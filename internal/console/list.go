package console

import (
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
)

// pageSize is how many requests one list page shows.
const pageSize = 50

// maxWithin bounds "due within N days".
const maxWithin = 366

// maxPage bounds the page number of a list ordered by deadline.
const maxPage = 10000

var allStatuses = []erasure.RequestStatus{
	erasure.RequestReceived, erasure.RequestUnverified, erasure.RequestPendingApproval,
	erasure.RequestInProgress, erasure.RequestNeedsAttention, erasure.RequestCompleted,
	erasure.RequestCompletedWithExemptions, erasure.RequestDenied, erasure.RequestCancelled,
}

// openStatuses are the statuses with a deadline still to meet.
func openStatuses() []erasure.RequestStatus {
	return slices.DeleteFunc(slices.Clone(allStatuses), erasure.RequestStatus.Final)
}

// row is one request in a list. It holds no identifiers.
type row struct {
	ID, Status, Jurisdiction, Source string
	ReceivedAt, DueAt                time.Time
	Overdue                          bool
	// Flagged: a re-check found the person again, or could not run.
	Flagged bool
	// Final: the request is over; its deadline no longer counts.
	Final bool
	// Left says the time to the deadline in days ("12 days left", "3
	// days overdue"); empty for a final request.
	Left string
	// Systems and Done count its systems; Waiting, the tasks only a
	// person can move on.
	Systems, Done, Waiting int
}

// Progress is "2 of 5 systems done", or empty before any is planned.
func (r row) Progress() string {
	if r.Systems == 0 {
		return ""
	}
	return fmt.Sprintf("%d of %s done", r.Done, plural(int64(r.Systems), "system", "systems"))
}

// rows reads the requests' progress and says their deadlines in days.
func (c *Console) rows(ctx context.Context, reqs []erasure.Request, now time.Time) ([]row, error) {
	ids := make([]string, len(reqs))
	for i, q := range reqs {
		ids[i] = q.ID
	}
	progress, err := c.store.Progress(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]row, len(reqs))
	for i, q := range reqs {
		p := progress[q.ID]
		out[i] = row{ID: q.ID, Status: string(q.Status), Jurisdiction: string(q.Jurisdiction), Source: q.Source,
			ReceivedAt: q.ReceivedAt, DueAt: q.DueAt, Overdue: q.Overdue(now), Flagged: q.Flag != "",
			Final: q.Status.Final(), Systems: p.Systems, Done: p.Done, Waiting: p.WaitingForPerson}
		if !out[i].Final {
			out[i].Left = daysLeft(q.DueAt, now)
		}
	}
	return out, nil
}

// daysLeft says how long until a deadline, in whole days: "due today"
// with less than a day left, "1 day overdue" up to a day after it.
func daysLeft(due, now time.Time) string {
	switch n := wholeDays(due.Sub(now)); {
	case n == 0:
		return "due today"
	case n > 0:
		return plural(n, "day", "days") + " left"
	default:
		return plural(-n, "day", "days") + " overdue"
	}
}

// wholeDays is d in whole days, rounded down: less than a day left is 0,
// up to a day late is -1.
func wholeDays(d time.Duration) int64 {
	return int64(math.Floor(d.Hours() / 24))
}

// listData is the request list, or search results.
type listData struct {
	Statuses []string
	// The filter as given.
	Status, Within, Sort      string
	Overdue, Flagged, Waiting bool
	// Search is true when these are search results (no paging).
	Search  bool
	Heading string
	// Batch is the batch the list is filtered by, summed up.
	Batch *batchView
	Rows  []row
	// Older and Newer link to the next and first pages; CSV, to the
	// whole filtered list as a file.
	Older, Newer, CSV string
	// Bulk: what a bulk action did to each request selected; Back, the
	// list's query to come back to; Categories, the kinds of reason an
	// extension may be given for, in every jurisdiction.
	Bulk       *bulkReport
	Back       string
	Categories []basisOption
}

// extensionCategories lists every jurisdiction's extension categories;
// the coordinator refuses one that is not the request's jurisdiction's.
func extensionCategories() []basisOption {
	var out []basisOption
	for _, j := range erasure.Jurisdictions {
		out = append(out, extensionOptions(j, strings.ToUpper(string(j))+" ")...)
	}
	return out
}

// extensionOptions are a jurisdiction's extension categories as options,
// their text after prefix.
func extensionOptions(j erasure.Jurisdiction, prefix string) []basisOption {
	var out []basisOption
	for _, code := range j.ExtensionCodes() {
		text, _ := j.ExtensionCategory(code)
		out = append(out, basisOption{Code: code, Text: prefix + text})
	}
	return out
}

// Caption describes the table's order.
func (d listData) Caption() string {
	switch {
	case d.Search:
		return "Requests found"
	case d.Sort == "due":
		return "Requests, soonest deadline first"
	}
	return "Requests, newest first"
}

type listFilter struct {
	batch   string
	status  erasure.RequestStatus
	within  int
	overdue bool
	flagged bool
	waiting bool
	byDue   bool
	before  string
	page    int
}

func parseListFilter(q url.Values) (listFilter, error) {
	f := listFilter{page: 1}
	if f.batch = q.Get("batch"); f.batch != "" {
		if err := erasure.CheckBatch(f.batch); err != nil {
			return f, err
		}
	}
	if s := q.Get("status"); s != "" {
		f.status = erasure.RequestStatus(s)
		if !f.status.Valid() {
			return f, erasure.Invalid("status", "is not a request status")
		}
	}
	if s := strings.TrimSpace(q.Get("within")); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxWithin {
			return f, erasure.Invalid("within", "give a number of days from 1 to %d", maxWithin)
		}
		f.within = n
	}
	f.overdue = q.Get("overdue") != ""
	f.flagged = q.Get("flagged") != ""
	f.waiting = q.Get("waiting") != ""
	switch q.Get("sort") {
	case "", "newest":
	case "due":
		f.byDue = true
	default:
		return f, erasure.Invalid("sort", "choose newest first or soonest deadline first")
	}
	if f.before = q.Get("before"); f.before != "" && !erasure.ValidID(f.before) {
		return f, erasure.Invalid("before", "is not a request id")
	}
	if s := q.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPage {
			return f, erasure.Invalid("page", "give a page number from 1 to %d", maxPage)
		}
		f.page = n
	}
	if f.overdue || f.within > 0 {
		if f.status.Final() {
			return f, erasure.Invalid("status", "a %s request has no deadline left to meet: "+
				"“overdue” and “due within” apply to open requests only; choose another status or clear the deadline filter",
				words(string(f.status)))
		}
	}
	return f, nil
}

// storeFilter turns the page's filter into the store's.
func (f listFilter) storeFilter(now time.Time, limit int) store.RequestFilter {
	sf := store.RequestFilter{Before: f.before, Limit: limit, Flagged: f.flagged, WaitingForPerson: f.waiting, ByDue: f.byDue, Batch: f.batch}
	if f.byDue {
		sf.Before, sf.Offset = "", (f.page-1)*pageSize
	}
	if f.status != "" {
		sf.Statuses = []erasure.RequestStatus{f.status}
	}
	if f.overdue || f.within > 0 {
		if f.status == "" {
			sf.Statuses = openStatuses()
		}
		sf.DueBefore = now.AddDate(0, 0, f.within)
		if f.overdue {
			sf.DueBefore = now
		}
	}
	return sf
}

// values is the filter as a query, without paging.
func (f listFilter) values() url.Values {
	q := url.Values{}
	if f.batch != "" {
		q.Set("batch", f.batch)
	}
	if f.status != "" {
		q.Set("status", string(f.status))
	}
	if f.within > 0 {
		q.Set("within", strconv.Itoa(f.within))
	}
	if f.overdue {
		q.Set("overdue", "1")
	}
	if f.flagged {
		q.Set("flagged", "1")
	}
	if f.waiting {
		q.Set("waiting", "1")
	}
	if f.byDue {
		q.Set("sort", "due")
	}
	return q
}

// link is path with the filter and a page: a cursor (newest first) or a
// page number (by deadline); neither for the first page.
func (f listFilter) link(path, before string, page int) string {
	q := f.values()
	if before != "" {
		q.Set("before", before)
	}
	if page > 1 {
		q.Set("page", strconv.Itoa(page))
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

func statusNames() []string {
	out := make([]string, len(allStatuses))
	for i, s := range allStatuses {
		out[i] = string(s)
	}
	return out
}

func listFromQuery(q url.Values) listData {
	return listData{Statuses: statusNames(), Status: q.Get("status"), Within: q.Get("within"), Sort: q.Get("sort"),
		Overdue: q.Get("overdue") != "", Flagged: q.Get("flagged") != "", Waiting: q.Get("waiting") != "", Heading: "Requests"}
}

// List shows requests, newest first or soonest deadline first, filtered
// by status and deadline, with each one's progress and days left:
// GET /console (and GET /console/{$}).
// Query: status, within (days), overdue=1, flagged=1 (a re-check found
// the person again), waiting=1 (a task waits for a person), sort=due,
// before (paging cursor, newest first), page (by deadline).
func (c *Console) List() http.Handler {
	return c.authed(canRead, func(w http.ResponseWriter, r *http.Request, s session) {
		q := r.URL.Query()
		page := pageData{Title: "Requests", Flash: flashes[q.Get("done")]}.withSession(&s)
		c.showList(w, r, s, q, page, nil, http.StatusOK)
	})
}

// showList renders the list for the filter in q, with a bulk action's
// report when there is one.
func (c *Console) showList(w http.ResponseWriter, r *http.Request, s session, q url.Values, page pageData, bulk *bulkReport, status int) {
	data := listFromQuery(q)
	data.Bulk = bulk
	f, err := parseListFilter(q)
	if err != nil {
		page.Error, page.Content = "This filter is not valid: "+userMessage(err), data
		c.render(w, r, http.StatusBadRequest, "list", page)
		return
	}
	now := c.clock()
	if f.batch != "" {
		if data.Batch, err = c.batch(r.Context(), f.batch); erasure.ErrorCode(err) == erasure.ENotFound {
			page.Error, page.Content = userMessage(err), data
			c.render(w, r, http.StatusNotFound, "list", page)
			return
		} else if err != nil {
			c.internalError(w, r, &s, err)
			return
		}
		data.Heading = "Batch " + f.batch
	}
	reqs, err := c.store.Requests(r.Context(), f.storeFilter(now, pageSize+1))
	if err != nil {
		c.internalError(w, r, &s, err)
		return
	}
	if len(reqs) > pageSize {
		reqs = reqs[:pageSize]
		data.Older = f.link("/console", reqs[pageSize-1].ID, 0)
		if f.byDue {
			data.Older = f.link("/console", "", f.page+1)
		}
	}
	if data.Rows, err = c.rows(r.Context(), reqs, now); err != nil {
		c.internalError(w, r, &s, err)
		return
	}
	if f.before != "" || f.page > 1 {
		data.Newer = f.link("/console", "", 0)
	}
	data.CSV = f.link("/console/requests.csv", "", 0)
	data.Back = f.values().Encode()
	data.Categories = extensionCategories()
	page.Content = data
	c.render(w, r, status, "list", page)
}

// csvHeader names the columns of the CSV export. No column holds a
// person's identifiers; days_left is whole days to the deadline (negative
// once overdue, empty for a final request).
var csvHeader = []string{"request_id", "status", "jurisdiction", "source", "received_at", "due_at", "days_left",
	"overdue", "flagged", "systems", "systems_done", "waiting_for_person"}

// CSV exports every request the list's filter keeps (all pages), as a
// file: GET /console/requests.csv with the list's query. It holds no
// identifiers: ids, statuses, dates and counts.
func (c *Console) CSV() http.Handler {
	return c.authed(canRead, func(w http.ResponseWriter, r *http.Request, s session) {
		f, err := parseListFilter(r.URL.Query())
		if err != nil {
			page := pageData{Title: "Requests", Error: "This filter is not valid: " + userMessage(err), Content: listFromQuery(r.URL.Query())}.withSession(&s)
			c.render(w, r, http.StatusBadRequest, "list", page)
			return
		}
		now := c.clock()
		f.before, f.page = "", 1
		sf := f.storeFilter(now, store.MaxLimit)
		cw := csv.NewWriter(w)
		started, n := false, 0
		for {
			reqs, err := c.store.Requests(r.Context(), sf)
			var rows []row
			if err == nil {
				rows, err = c.rows(r.Context(), reqs, now)
			}
			if err != nil {
				if !started {
					c.internalError(w, r, &s, err)
					return
				}
				// Half a file must not pass for the whole list.
				c.log.Error("console: CSV export cut off", zap.Error(err), zap.Int("rows", n))
				cw.Flush()
				_, _ = fmt.Fprintf(w, "\nEXPORT INCOMPLETE: the list could not be read to its end\n")
				return
			}
			if !started {
				started = true
				w.Header().Set("Content-Type", "text/csv; charset=utf-8")
				w.Header().Set("Content-Disposition", `attachment; filename="lethe-requests-`+now.UTC().Format("20060102-150405")+`.csv"`)
				_ = cw.Write(csvHeader)
			}
			for _, rw := range rows {
				left := ""
				if !rw.Final {
					left = strconv.FormatInt(wholeDays(rw.DueAt.Sub(now)), 10)
				}
				_ = cw.Write([]string{rw.ID, rw.Status, rw.Jurisdiction, rw.Source, rw.ReceivedAt.UTC().Format(time.RFC3339),
					rw.DueAt.UTC().Format(time.RFC3339), left, strconv.FormatBool(rw.Overdue), strconv.FormatBool(rw.Flagged),
					strconv.Itoa(rw.Systems), strconv.Itoa(rw.Done), strconv.Itoa(rw.Waiting)})
			}
			n += len(rows)
			if len(reqs) < sf.Limit {
				break
			}
			if sf.ByDue {
				sf.Offset += len(reqs)
			} else {
				sf.Before = reqs[len(reqs)-1].ID
			}
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			c.log.Warn("console: CSV export not written", zap.Error(err))
			return
		}
		c.log.Info("console: CSV export", zap.String("user", s.User), zap.Int("rows", n))
	})
}
