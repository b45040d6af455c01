package console

import (
	"encoding/json"
	"errors"
	"github.com/lethe-dev/lethe/internal/coverage"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
)

// pageSize is how many requests one list page shows.
const pageSize = 50

// maxWithin bounds "due within N days".
const maxWithin = 366

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
}

func rows(reqs []erasure.Request, now time.Time) []row {
	out := make([]row, len(reqs))
	for i, q := range reqs {
		out[i] = row{ID: q.ID, Status: string(q.Status), Jurisdiction: string(q.Jurisdiction), Source: q.Source,
			ReceivedAt: q.ReceivedAt, DueAt: q.DueAt, Overdue: q.Overdue(now), Flagged: q.Flag != ""}
	}
	return out
}

// listData is the request list, or search results.
type listData struct {
	Statuses []string
	// The filter as given.
	Status, Within   string
	Overdue, Flagged bool
	// Search is true when these are search results (no paging).
	Search  bool
	Heading string
	Rows    []row
	// Older and Newer link to the next and first pages.
	Older, Newer string
}

type listFilter struct {
	status  erasure.RequestStatus
	within  int
	overdue bool
	flagged bool
	before  string
}

func parseListFilter(q url.Values) (listFilter, error) {
	var f listFilter
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
	if f.before = q.Get("before"); f.before != "" && !erasure.ValidID(f.before) {
		return f, erasure.Invalid("before", "is not a request id")
	}
	return f, nil
}

// storeFilter turns the page's filter into the store's. ok is false when
// nothing can match (a final status that is due or overdue).
func (f listFilter) storeFilter(now time.Time) (store.RequestFilter, bool) {
	sf := store.RequestFilter{Before: f.before, Limit: pageSize + 1, Flagged: f.flagged}
	if f.status != "" {
		sf.Statuses = []erasure.RequestStatus{f.status}
	}
	if f.overdue || f.within > 0 {
		if f.status.Final() {
			return sf, false // a final request has no deadline left to meet
		}
		if f.status == "" {
			sf.Statuses = openStatuses()
		}
		sf.DueBefore = now.AddDate(0, 0, f.within)
		if f.overdue {
			sf.DueBefore = now
		}
	}
	return sf, true
}

func (f listFilter) query(before string) string {
	q := url.Values{}
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
	if before != "" {
		q.Set("before", before)
	}
	if len(q) == 0 {
		return "/console"
	}
	return "/console?" + q.Encode()
}

func statusNames() []string {
	out := make([]string, len(allStatuses))
	for i, s := range allStatuses {
		out[i] = string(s)
	}
	return out
}

// List shows requests, newest first, filtered by status and deadline:
// GET /console (and GET /console/{$}).
// Query: status, within (days), overdue=1, flagged=1 (a re-check found
// the person again), before (paging cursor).
func (c *Console) List() http.Handler {
	return c.authed(canRead, func(w http.ResponseWriter, r *http.Request, s session) {
		q := r.URL.Query()
		data := listData{Statuses: statusNames(), Status: q.Get("status"), Within: q.Get("within"), Overdue: q.Get("overdue") != "",
			Flagged: q.Get("flagged") != "", Heading: "Requests"}
		page := pageData{Title: "Requests", Flash: flashes[q.Get("done")]}.withSession(&s)
		f, err := parseListFilter(q)
		if err != nil {
			page.Error, page.Content = userMessage(err), data
			c.render(w, r, http.StatusBadRequest, "list", page)
			return
		}
		now := c.clock()
		if sf, ok := f.storeFilter(now); ok {
			reqs, err := c.store.Requests(r.Context(), sf)
			if err != nil {
				c.internalError(w, r, &s, err)
				return
			}
			if len(reqs) > pageSize {
				reqs = reqs[:pageSize]
				data.Older = f.query(reqs[pageSize-1].ID)
			}
			data.Rows = rows(reqs, now)
		}
		if f.before != "" {
			data.Newer = f.query("")
		}
		page.Content = data
		c.render(w, r, http.StatusOK, "list", page)
	})
}

// Search finds requests by request id, or by an email address or phone
// number: POST /console/search, field q. The identifier is hashed with
// the organisation's key on the fly and goes no further: it is not stored,
// logged, put in a URL or shown back.
func (c *Console) Search() http.Handler {
	return c.authed(canRead, func(w http.ResponseWriter, r *http.Request, s session) {
		data := listData{Statuses: statusNames(), Search: true, Heading: "Search results"}
		page := pageData{Title: "Search results"}.withSession(&s)
		reqs, err := c.search(r, strings.TrimSpace(r.PostForm.Get("q")))
		if err != nil {
			if code := erasure.ErrorCode(err); code == erasure.EInternal || code == erasure.EUnavailable {
				c.internalError(w, r, &s, err)
				return
			}
			page.Error, page.Content = userMessage(err), data
			c.render(w, r, http.StatusUnprocessableEntity, "list", page)
			return
		}
		data.Rows = rows(reqs, c.clock())
		page.Content = data
		c.render(w, r, http.StatusOK, "list", page)
	})
}

func (c *Console) search(r *http.Request, q string) ([]erasure.Request, error) {
	switch {
	case q == "":
		return nil, erasure.Invalid("q", "type a request id, an email address or a phone number")
	case erasure.ValidID(q):
		req, err := c.store.Request(r.Context(), q)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []erasure.Request{req}, nil
	}
	subj := erasure.Subject{Phone: q}
	if strings.Contains(q, "@") {
		subj = erasure.Subject{Email: q}
	}
	subj, err := subj.Normalize()
	if err != nil {
		return nil, erasure.Invalid("q", "this is not a request id, a valid email address or an international phone number such as +447700900123")
	}
	var hashes []string
	for _, id := range c.hasher.Ref(subj).Identifiers {
		hashes = append(hashes, id.Hash)
	}
	return c.store.RequestsBySubjectHash(r.Context(), hashes)
}

// Keys lists the public keys certificates are signed with: GET
// /console/keys, admins only.
func (c *Console) Keys() http.Handler {
	return c.authed(canAdmin, func(w http.ResponseWriter, r *http.Request, s session) {
		type key struct {
			Kid, Alg, Curve string
			Active          bool
		}
		var keys []key
		if c.jwks != nil {
			var set certificate.JWKS
			if err := json.Unmarshal(c.jwks(), &set); err != nil {
				c.internalError(w, r, &s, err)
				return
			}
			for i, k := range set.Keys {
				keys = append(keys, key{Kid: k.Kid, Alg: k.Alg, Curve: k.Crv, Active: i == 0})
			}
		}
		c.render(w, r, http.StatusOK, "keys", pageData{Title: "Signing keys", Content: keys}.withSession(&s))
	})
}

// DataMap answers GET /console/coverage: every connector instance, what it
// erases by, and where its system holds personal data no rule covers, as
// the last discovery found. Every role may read it.
func (c *Console) DataMap() http.Handler {
	return c.authed(canRead, func(w http.ResponseWriter, r *http.Request, s session) {
		type view struct {
			Rows     []coverage.Row
			Interval string
			Known    bool
		}
		v := view{Known: c.dataMap != nil}
		if c.discoveryInterval > 0 {
			v.Interval = c.discoveryInterval.String()
		}
		if c.dataMap != nil {
			rows, err := c.dataMap(r.Context())
			if err != nil {
				c.internalError(w, r, &s, err)
				return
			}
			v.Rows = rows
		}
		c.render(w, r, http.StatusOK, "coverage", pageData{Title: "Data map", Content: v}.withSession(&s))
	})
}
