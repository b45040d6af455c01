package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/coverage"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
)

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
		if data.Rows, err = c.rows(r.Context(), reqs, c.clock()); err != nil {
			c.internalError(w, r, &s, err)
			return
		}
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
