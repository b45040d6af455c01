package mailchimp_test

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// fakeMailchimp is a local Mailchimp Marketing API (3.0) holding audiences
// and their members, as documented: Basic auth with the API key as the
// password, members named by the MD5 of the lower-cased address,
// delete-permanent answering 204 or 404 "Resource Not Found" (also for an
// unknown audience), a plain DELETE that only archives, and throttling by
// simultaneous connections with a 429 that carries no rate-limit headers.
type fakeMailchimp struct {
	*fakevendor.Server
	key string

	mu        sync.Mutex
	lists     map[string]map[string]*member // audience id → subscriber hash → member
	forgotten map[string]map[string]bool    // audience id → hashes deleted permanently
	inflight  int
	maxConns  int
	latency   time.Duration
}

type member struct {
	email  string
	status string // subscribed, unsubscribed, archived, …
}

var hashRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

func newFake(t testing.TB, key string, lists ...string) *fakeMailchimp {
	t.Helper()
	f := &fakeMailchimp{
		Server:    fakevendor.New(t),
		key:       key,
		lists:     map[string]map[string]*member{},
		forgotten: map[string]map[string]bool{},
		maxConns:  10,
	}
	for _, l := range lists {
		f.addList(l)
	}
	f.RequireAuth(func(r *http.Request) bool {
		_, pass, ok := r.BasicAuth()
		return ok && pass == f.key
	}, func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusUnauthorized, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter.")
	})
	f.Handle("GET /3.0/lists", f.throttled(f.getLists))
	f.Handle("GET /3.0/lists/{list}", f.throttled(f.getList))
	f.Handle("GET /3.0/lists/{list}/members/{hash}", f.throttled(f.getMember))
	f.Handle("DELETE /3.0/lists/{list}/members/{hash}", f.throttled(f.archiveMember))
	f.Handle("POST /3.0/lists/{list}/members/{hash}/actions/delete-permanent", f.throttled(f.deletePermanent))
	return f
}

// problem writes Mailchimp's error document (RFC 7807 style).
func problem(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"type":"https://mailchimp.com/developer/marketing/docs/errors/","title":%q,"status":%d,"detail":%q,"instance":"5b3c1a9e-0000-4000-8000-000000000000"}`,
		title, status, detail)
}

func notFound(w http.ResponseWriter) {
	problem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.")
}

// tooManyConnections is Mailchimp's throttling answer: no Retry-After and
// no rate-limit headers.
func tooManyConnections(w http.ResponseWriter, _ *http.Request) {
	problem(w, http.StatusTooManyRequests, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections.")
}

// unavailable is a 503 from Mailchimp's edge.
func unavailable(w http.ResponseWriter, _ *http.Request) {
	problem(w, http.StatusServiceUnavailable, "Service Unavailable", "The service is temporarily unavailable.")
}

// throttled applies Mailchimp's limit on simultaneous connections.
func (f *fakeMailchimp) throttled(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.inflight++
		over := f.inflight > f.maxConns
		latency := f.latency
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			f.inflight--
			f.mu.Unlock()
		}()
		if over {
			tooManyConnections(w, r)
			return
		}
		time.Sleep(latency)
		h(w, r)
	}
}

func (f *fakeMailchimp) addList(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lists[id] == nil {
		f.lists[id] = map[string]*member{}
	}
}

func hashOf(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(email)))
	return hex.EncodeToString(sum[:])
}

// add puts email in each audience, as a subscriber.
func (f *fakeMailchimp) add(email string, lists ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range lists {
		if f.lists[l] == nil {
			panic("fake: no audience " + l)
		}
		f.lists[l][hashOf(email)] = &member{email: email, status: "subscribed"}
	}
}

// count returns how many audiences hold email, archived members included.
func (f *fakeMailchimp) count(email string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, members := range f.lists {
		if members[hashOf(email)] != nil {
			n++
		}
	}
	return n
}

func (f *fakeMailchimp) wasForgotten(list, email string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.forgotten[list][hashOf(email)]
}

func (f *fakeMailchimp) getLists(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	count, offset := 10, 0
	if v := q.Get("count"); v != "" {
		count, _ = strconv.Atoi(v)
	}
	if v := q.Get("offset"); v != "" {
		offset, _ = strconv.Atoi(v)
	}
	if count < 1 || count > 1000 || offset < 0 {
		problem(w, http.StatusBadRequest, "Invalid Resource", "count must be 1 to 1000")
		return
	}
	f.mu.Lock()
	ids := make([]string, 0, len(f.lists))
	for id := range f.lists {
		ids = append(ids, id)
	}
	f.mu.Unlock()
	slices.Sort(ids)
	total := len(ids)
	ids = ids[min(offset, total):min(offset+count, total)]
	lists := make([]map[string]any, len(ids))
	for i, id := range ids {
		if q.Get("fields") == "lists.id" {
			lists[i] = map[string]any{"id": id}
		} else {
			lists[i] = map[string]any{"id": id, "web_id": i + 1, "name": "Audience " + id}
		}
	}
	if q.Get("fields") == "lists.id" {
		fakevendor.JSON(w, http.StatusOK, map[string]any{"lists": lists})
		return
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"lists": lists, "total_items": total})
}

func (f *fakeMailchimp) getList(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("list")
	f.mu.Lock()
	_, ok := f.lists[id]
	f.mu.Unlock()
	if !ok {
		notFound(w)
		return
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"id": id})
}

// lookup finds the member a request names; ok is false after a 404 was
// written. Mailchimp would also take an address or contact id here; the
// fake takes only the documented hash, so a connector sending anything
// else finds nobody and the tests notice.
func (f *fakeMailchimp) lookup(w http.ResponseWriter, r *http.Request) (members map[string]*member, hash string, ok bool) {
	hash = r.PathValue("hash")
	members, ok = f.lists[r.PathValue("list")]
	if !ok || !hashRe.MatchString(hash) || members[hash] == nil {
		notFound(w)
		return nil, "", false
	}
	return members, hash, true
}

func (f *fakeMailchimp) getMember(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	members, hash, ok := f.lookup(w, r)
	if !ok {
		return
	}
	m := members[hash]
	fakevendor.JSON(w, http.StatusOK, map[string]any{"id": hash, "email_address": m.email, "status": m.status, "list_id": r.PathValue("list")})
}

// archiveMember is the plain DELETE: the member is archived, not erased.
func (f *fakeMailchimp) archiveMember(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	members, hash, ok := f.lookup(w, r)
	if !ok {
		return
	}
	members[hash].status = "archived"
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeMailchimp) deletePermanent(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	members, hash, ok := f.lookup(w, r)
	if !ok {
		return
	}
	delete(members, hash)
	list := r.PathValue("list")
	if f.forgotten[list] == nil {
		f.forgotten[list] = map[string]bool{}
	}
	f.forgotten[list][hash] = true
	w.WriteHeader(http.StatusNoContent)
}
