// Package httpapi is the declarative `http` connector: a vendor's
// look-up, delete and job-status calls described in config (templates,
// paths into the JSON answers, a mapping of the vendor's job states)
// instead of written in Go. It runs on the same runtime as every other
// connector: the instance's rate limit, retries with the vendor's
// Retry-After, polls that survive restarts, Verify by looking the person
// up again, and resolution when a lookup gives further identifiers.
// docs/connectors/http.md is the guide.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorhttp"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
)

func init() {
	// One call a second unless the entry sets rate_per_second: a
	// description says nothing of the vendor's limit.
	connectors.Register("http", "a vendor's HTTP API described in config (lookups, delete, job status)",
		connectors.Limits{Concurrency: 2, RatePerSecond: 1, Burst: 1}, build)
}

type conn struct {
	d       *desc
	base    string
	api     *vendorhttp.Client
	creds   *credentials
	secrets map[string]string
}

func build(_ context.Context, _ string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	creds, err := revealCredentials(deps, cfg.Vendor, cfg.Auth)
	if err != nil {
		return nil, err
	}
	secrets := map[string]string{}
	for n, s := range cfg.Secrets {
		if secrets[n], err = vendorkit.Reveal(deps, "secrets."+n, s); err != nil {
			return nil, err
		}
	}
	api := vendorkit.Client(deps, cfg.Vendor, creds.set)
	api.ResetHeader, api.MinRetryAfter = cfg.RateLimit.ResetHeader, cfg.RateLimit.MinRetryAfter
	c := &conn{d: cfg.compiled, base: cfg.BaseURL, api: api, creds: creds, secrets: secrets}
	switch {
	case len(c.d.lookups) == 0:
		return c, nil
	case slices.ContainsFunc(c.d.lookups, func(l lookup) bool { return len(l.gives) > 0 }):
		return resolving{verifying{c}}, nil
	}
	return verifying{c}, nil
}

// verifying is an instance with lookups: it can look the person up again.
type verifying struct{ *conn }

// resolving is an instance whose lookups give identifiers.
type resolving struct{ verifying }

// send makes the call r describes with v; statuses in ok come back as
// answers, the others as classified errors naming op, never the URL.
func (c *conn) send(ctx context.Context, r request, v values, op string, ok ...int) (*vendorhttp.Response, error) {
	v.secrets = c.secrets
	for attempt := 0; ; attempt++ {
		req, err := c.build(r, v)
		if err != nil {
			return nil, err
		}
		if c.creds.oauth != nil {
			if err := c.creds.oauth.ensure(ctx); err != nil {
				return nil, err
			}
			ok = append(ok, http.StatusUnauthorized)
		}
		resp, err := c.api.Do(ctx, req, op, ok...)
		if err != nil || resp.Status != http.StatusUnauthorized || c.creds.oauth == nil {
			return resp, err
		}
		// The token was refused before its expiry (revoked, rotated):
		// once more with a fresh one.
		c.creds.oauth.forget()
		if attempt > 0 {
			return nil, connectors.Permanentf("%s %s: 401 Unauthorized with a fresh OAuth2 token: the credentials were refused; check auth.oauth2 and the client's permissions", c.d.vendor, op)
		}
		ok = ok[:len(ok)-1]
	}
}

// build renders r into an HTTP request.
func (c *conn) build(r request, v values) (*http.Request, error) {
	p, err := r.path.render(v, url.PathEscape)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	for k, t := range r.query {
		s, err := t.render(v, noEscape)
		if err != nil {
			return nil, err
		}
		if s == "" && slices.Contains(t.names(), "next") {
			continue // the first page
		}
		q.Set(k, s)
	}
	if c.creds.queryName != "" {
		q.Set(c.creds.queryName, c.creds.queryValue)
	}
	u := c.base + p
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body []byte
	contentType := ""
	switch {
	case r.json != nil:
		tree, err := renderJSON(r.json, v)
		if err != nil {
			return nil, err
		}
		if body, err = marshal(tree); err != nil {
			return nil, err
		}
		contentType = "application/json"
	case r.form != nil:
		f := url.Values{}
		for k, t := range r.form {
			s, err := t.render(v, noEscape)
			if err != nil {
				return nil, err
			}
			f.Set(k, s)
		}
		body, contentType = []byte(f.Encode()), "application/x-www-form-urlencoded"
	}
	req, err := http.NewRequest(r.method, u, bytes.NewReader(body))
	if err != nil {
		return nil, connectors.Permanentf("%s: the request's URL is not valid (check base_url and the path)", c.d.vendor)
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, t := range r.headers {
		s, err := t.render(v, noEscape)
		if err != nil {
			return nil, err
		}
		if strings.ContainsAny(s, "\r\n\x00") {
			return nil, connectors.Permanentf("%s: a header value would hold a line break (an identifier that cannot be sent in a header)", c.d.vendor)
		}
		req.Header.Set(k, s)
	}
	return req, nil
}

func noEscape(s string) string { return s }

// renderJSON fills the templates of a body tree in; "{ids}" alone becomes
// a list.
func renderJSON(t any, v values) (any, error) {
	switch t := t.(type) {
	case template:
		if t.whole() == "ids" {
			return slices.Clone(v.ids), nil
		}
		return t.render(v, noEscape)
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			r, err := renderJSON(x, v)
			if err != nil {
				return nil, err
			}
			m[k] = r
		}
		return m, nil
	case []any:
		l := make([]any, len(t))
		for i, x := range t {
			r, err := renderJSON(x, v)
			if err != nil {
				return nil, err
			}
			l[i] = r
		}
		return l, nil
	}
	return t, nil
}

// matches reports whether resp is the vendor's "no such record"; a status
// that n lists without the body n names is a misconfiguration.
func (c *conn) notFound(n *notFound, resp *vendorhttp.Response, op string) (bool, error) {
	if n == nil || !slices.Contains(n.status, resp.Status) {
		return false, nil
	}
	if n.path == nil {
		return true, nil
	}
	body, err := decode(resp.Body)
	if err == nil && n.path.text(body) == n.equals {
		return true, nil
	}
	return false, connectors.Permanentf("%s %s: %d without the vendor's \"no such record\" answer: check base_url and the request's path", c.d.vendor, op, resp.Status)
}

// answer decodes a 2xx body.
func (c *conn) answer(resp *vendorhttp.Response, op string) (any, error) {
	v, err := decode(resp.Body)
	if err != nil {
		return nil, connectors.Retryable(fmt.Errorf("%s %s: unreadable answer (status %d)", c.d.vendor, op, resp.Status), 0)
	}
	return v, nil
}

// record is one record a lookup found.
type record struct {
	id  string
	by  *lookup
	raw any
}

// run runs lookup l for s, every page, and returns the records found.
func (c *conn) run(ctx context.Context, l *lookup, s connectors.Subject) ([]record, error) {
	op := l.name + " lookup"
	var out []record
	v := values{subject: s}
	for page := 0; ; page++ {
		resp, err := c.send(ctx, l.req, v, op, statuses(l.notFound)...)
		if err != nil {
			return nil, err
		}
		if nf, err := c.notFound(l.notFound, resp, op); nf || err != nil {
			return out, err
		}
		body, err := c.answer(resp, op)
		if err != nil {
			return nil, err
		}
		for _, rec := range flatten(l.records.pick(body)) {
			id := l.id.text(rec)
			if id == "" {
				return nil, connectors.Retryable(fmt.Errorf("%s %s: a record without an id at %q (status %d)", c.d.vendor, op, l.id.src, resp.Status), 0)
			}
			out = append(out, record{id: id, by: l, raw: rec})
		}
		if l.next == nil {
			return out, nil
		}
		if v.next = l.next.text(body); v.next == "" {
			return out, nil
		}
		if page+1 >= l.maxPages {
			return nil, connectors.Permanentf("%s %s: more than %d pages of records: raise pages.max, or the erasure would leave records unread", c.d.vendor, op, l.maxPages)
		}
	}
}

// flatten lists the records picked: a list picked is its elements; null
// is no record.
func flatten(picked []any) []any {
	var out []any
	for _, p := range picked {
		switch p := p.(type) {
		case []any:
			out = append(out, flatten(p)...)
		case nil:
		default:
			out = append(out, p)
		}
	}
	return out
}

func statuses(n *notFound) []int {
	if n == nil {
		return nil
	}
	return n.status
}

// find runs every lookup s has the identifier for and returns the
// distinct records found, what was searched by, and evidence counting
// each lookup's records.
func (c *conn) find(ctx context.Context, s connectors.Subject) ([]record, []connectors.Kind, connectors.Evidence, error) {
	var found []record
	var searched []connectors.Kind
	var counts []string
	for i := range c.d.lookups {
		l := &c.d.lookups[i]
		if !s.Has(l.kind) {
			continue
		}
		recs, err := c.run(ctx, l, s)
		if err != nil {
			return nil, nil, connectors.Evidence{}, err
		}
		if !slices.Contains(searched, l.kind) {
			searched = append(searched, l.kind)
		}
		n := 0
		for _, r := range recs {
			if !slices.ContainsFunc(found, func(f record) bool { return f.id == r.id && f.by.recoverable == r.by.recoverable }) {
				found = append(found, r)
				n++
			}
		}
		what := l.name + ": " + strconv.Itoa(n) + " found by " + string(l.kind)
		if l.recoverable != "" {
			what += " (recoverable: " + l.recoverable + ")"
		}
		counts = append(counts, what)
	}
	if len(searched) == 0 {
		return nil, nil, connectors.Evidence{}, connectors.Permanentf("the subject has none of the identifiers the %s lookups search by (check the instance's keys)", c.d.vendor)
	}
	return found, searched, connectors.Evidence{Kind: "lookup", Value: strings.Join(counts, "; ")}, nil
}

// ref is an Erase's job reference: the vendor's job ids. It never holds
// an identifier of the person.
type ref struct {
	Jobs []string `json:"jobs"`
}

// Erase looks the person up and deletes every record found (or, without
// lookups, asks the vendor to delete them by their identifiers).
func (c *conn) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return connectors.Outcome{}, err
	}
	if len(c.d.lookups) == 0 {
		return c.eraseByIdentifiers(ctx, s)
	}
	found, searched, ev, err := c.find(ctx, s)
	if err != nil {
		return connectors.Outcome{}, err
	}
	if len(found) == 0 {
		out := connectors.NotFound(ev)
		out.SearchedBy = searched
		return out, nil
	}
	del := c.d.delete
	var r ref
	var records int64
	counted := true
	gone := 0
	for start := 0; start < len(found); start += del.batch {
		chunk := found[start:min(start+del.batch, len(found))]
		v := values{subject: s, id: chunk[0].id}
		for _, rec := range chunk {
			v.ids = append(v.ids, rec.id)
		}
		n, job, already, err := c.deleteOnce(ctx, v, int64(len(chunk)))
		if err != nil {
			return connectors.Outcome{}, err
		}
		switch {
		case already:
			gone += len(chunk)
		case job != "":
			r.Jobs = append(r.Jobs, job)
		case n < 0:
			counted = false
		default:
			records += n
		}
	}
	evidence := []connectors.Evidence{ev}
	if gone > 0 {
		evidence = append(evidence, connectors.Evidence{Kind: "delete", Value: connectors.Plural(gone, "record") + " already gone when deleted"})
	}
	if len(r.Jobs) > 0 {
		out := connectors.Running(vendorkit.EncodeRef(r), c.d.status.poll, append(evidence,
			connectors.Evidence{Kind: "job", Value: strings.Join(r.Jobs, ", ") + ": started"})...)
		out.SearchedBy = searched
		return out, nil
	}
	if err := c.checkRecoverable(ctx, s, found); err != nil {
		return connectors.Outcome{}, err
	}
	var out connectors.Outcome
	if counted {
		out = connectors.Erased(records, append(evidence, connectors.Evidence{Kind: "delete", Value: connectors.Plural(int(records), "record") + " deleted"})...)
	} else {
		out = connectors.ErasedUncounted(append(evidence, connectors.Evidence{Kind: "delete", Value: "deleted; the vendor's answer gave no count"})...)
	}
	out.SearchedBy = searched
	return out, nil
}

// deleteOnce makes one delete call: n is what it deleted (want when the
// description reads no count, -1 when an answer's count was unreadable),
// job the job it started, already that the vendor answered "no such
// record".
func (c *conn) deleteOnce(ctx context.Context, v values, want int64) (n int64, job string, already bool, err error) {
	del := c.d.delete
	resp, err := c.send(ctx, del.req, v, "delete", statuses(del.notFound)...)
	if err != nil {
		return 0, "", false, err
	}
	if nf, err := c.notFound(del.notFound, resp, "delete"); nf || err != nil {
		return 0, "", nf, err
	}
	if del.job == nil && del.count == nil {
		return want, "", false, nil
	}
	body, err := c.answer(resp, "delete")
	if err != nil {
		return 0, "", false, err
	}
	if del.job != nil {
		job = del.job.text(body)
		if job == "" || len(job) > 200 {
			return 0, "", false, connectors.Retryable(fmt.Errorf("%s delete: no job reference at %q (status %d)", c.d.vendor, del.job.src, resp.Status), 0)
		}
		return 0, job, false, nil
	}
	count, err := strconv.ParseInt(del.count.text(body), 10, 64)
	if err != nil || count < 0 {
		return -1, "", false, nil
	}
	return count, "", false, nil
}

// eraseByIdentifiers is Erase without lookups: one call keyed by the
// person's identifiers.
func (c *conn) eraseByIdentifiers(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	n, job, already, err := c.deleteOnce(ctx, values{subject: s}, -1)
	switch {
	case err != nil:
		return connectors.Outcome{}, err
	case already:
		return connectors.NotFound(connectors.Evidence{Kind: "delete", Value: c.d.vendor + " answered that it holds no such person"}), nil
	case job != "":
		return connectors.Running(vendorkit.EncodeRef(ref{Jobs: []string{job}}), c.d.status.poll,
			connectors.Evidence{Kind: "job", Value: job + ": started"}), nil
	case n >= 0 && c.d.delete.count != nil:
		return connectors.Erased(n, connectors.Evidence{Kind: "delete", Value: c.d.vendor + " reports " + connectors.Plural(int(n), "record") + " deleted"}), nil
	}
	return connectors.ErasedUncounted(connectors.Evidence{Kind: "delete",
		Value: "acknowledged by " + c.d.vendor + "; not looked up, so what it held is unknown"}), nil
}

// checkRecoverable looks again where recoverable records were found: one
// still there fails the erasure, since the vendor can restore it.
func (c *conn) checkRecoverable(ctx context.Context, s connectors.Subject, found []record) error {
	var again []*lookup
	for _, r := range found {
		if r.by.recoverable != "" && !slices.Contains(again, r.by) {
			again = append(again, r.by)
		}
	}
	for _, l := range again {
		recs, err := c.run(ctx, l, s)
		if err != nil {
			return err
		}
		if len(recs) > 0 {
			return connectors.Permanentf("%s still holds %s in %s after the delete: remove it there by hand (or with the vendor's support), then retry",
				c.d.vendor, connectors.Plural(len(recs), "record"), l.recoverable)
		}
	}
	return nil
}

// Poll reads the state of each job the erasure started.
func (c *conn) Poll(ctx context.Context, jobRef string) (connectors.Outcome, error) {
	var r ref
	if err := vendorkit.DecodeRef(jobRef, &r, func() bool { return len(r.Jobs) > 0 && !slices.Contains(r.Jobs, "") }, c.d.vendor); err != nil {
		return connectors.Outcome{}, err
	}
	st := c.d.status
	if st == nil {
		return connectors.Outcome{}, connectors.Permanentf("the %s description reads no job status: erase the person again", c.d.vendor)
	}
	var ev []connectors.Evidence
	running, held := false, false
	for _, job := range r.Jobs {
		resp, err := c.send(ctx, st.req, values{job: job}, "job status")
		if err != nil {
			return connectors.Outcome{}, err
		}
		body, err := c.answer(resp, "job status")
		if err != nil {
			return connectors.Outcome{}, err
		}
		state := st.state.text(body)
		if state == "" {
			return connectors.Outcome{}, connectors.Retryable(fmt.Errorf("%s job %s: no state at %q (status %d)", c.d.vendor, job, st.state.src, resp.Status), 0)
		}
		ev = append(ev, connectors.Evidence{Kind: "job", Value: job + ": " + state})
		switch st.states[state] {
		case stateRunning:
			running = true
		case stateErased:
			held = true
		case stateNotFound:
		case stateFailed:
			return connectors.Outcome{Evidence: ev}, connectors.Permanentf("%s job %s ended %.40q: a person must look at it in %s, then erase the person again", c.d.vendor, job, state, c.d.vendor)
		case stateRetry:
			return connectors.Outcome{Evidence: ev}, connectors.Retryable(fmt.Errorf("%s job %s ended %.40q: a new deletion will be filed", c.d.vendor, job, state), 0)
		default:
			return connectors.Outcome{Evidence: ev}, connectors.Retryable(fmt.Errorf("%s job %s has state %.40q, which job_status.states does not map", c.d.vendor, job, state), 0)
		}
	}
	switch {
	case running:
		return connectors.Running(jobRef, st.poll, ev...), nil
	case !held:
		return connectors.NotFound(ev...), nil
	}
	return connectors.ErasedUncounted(ev...), nil
}

// Verify looks the person up again: every record still found remains,
// those in a recoverable state too.
func (c verifying) Verify(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	found, _, ev, err := c.find(ctx, s)
	if err != nil {
		return connectors.Verification{}, err
	}
	ev.Kind = "lookup_after_erase"
	return connectors.Verification{Remaining: int64(len(found)), Evidence: []connectors.Evidence{ev}}, nil
}

// Resolve runs the lookups that give identifiers and reports what their
// records hold.
func (c resolving) Resolve(ctx context.Context, s connectors.Subject) (connectors.Resolution, error) {
	var res connectors.Resolution
	var counts []string
	for i := range c.d.lookups {
		l := &c.d.lookups[i]
		if len(l.gives) == 0 || !s.Has(l.kind) {
			continue
		}
		recs, err := c.run(ctx, l, connectors.Subject{}.With(l.kind, s.Get(l.kind)))
		if err != nil {
			return connectors.Resolution{}, err
		}
		for _, r := range recs {
			for _, g := range l.gives {
				for _, x := range g.at.pick(r.raw) {
					if v := scalar(x); v != "" {
						res.Add(g.kind, v)
					}
				}
			}
		}
		counts = append(counts, l.name+": "+strconv.Itoa(len(recs))+" found by "+string(l.kind))
	}
	if len(counts) > 0 {
		res.Evidence = []connectors.Evidence{{Kind: "lookup", Value: strings.Join(counts, "; ")}}
	}
	return res, nil
}

// marshal writes a rendered body.
func marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, connectors.Permanent(errors.New("the description's json body cannot be written as JSON"))
	}
	return b, nil
}

// Compile-time checks.
var (
	_ connectors.Poller   = (*conn)(nil)
	_ connectors.Verifier = verifying{}
	_ connectors.Resolver = resolving{}
)
