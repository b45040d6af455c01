// Package mailchimpfake is a local Mailchimp Marketing API for tests:
// audiences and their members, permanent deletes as Mailchimp documents
// them, its limit on simultaneous connections and faults to inject.
//
//	f := mailchimpfake.Start(t, mailchimpfake.Options{})
//	f.Seed(connectors.Subject{Email: "ada@example.com"})
//	c := connectortest.Build(t, "mailchimp", "newsletter", f.Config())
package mailchimpfake

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

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// DefaultKey is the API key a fake accepts until SetKey.
const DefaultKey = "0123456789abcdef0123456789abcdef-us6"

// Audiences are the audience ids every fake starts with; Config lists
// them and Seed adds the subject to the first two.
func Audiences() []string { return []string{"a1b2c3d4e5", "f6a7b8c9d0", "0a0b0c0d0e"} }

// maxConns is how many simultaneous connections Mailchimp takes.
const maxConns = 10

// Options tunes a fake: its rate limit also refuses requests with
// Mailchimp's throttling answer, 429 "Too Many Requests" without
// Retry-After or rate-limit headers; Mailchimp's own limit, 10
// simultaneous connections, always applies. Polls is unused: Mailchimp's
// permanent delete is synchronous.
type Options = fakevendor.Options

// Fake is a local Mailchimp Marketing API (3.0) holding audiences and
// their members, as documented: Basic auth with the API key as the
// password, members named by the MD5 of the lower-cased address,
// delete-permanent answering 204 or 404 "Resource Not Found" (also for an
// unknown audience), a plain DELETE that only archives, and throttling by
// simultaneous connections with a 429 that carries no rate-limit headers.
type Fake struct {
	fakevendor.Controls

	mu        sync.Mutex
	key       *fakevendor.Key
	lists     map[string]map[string]*member // audience id → subscriber hash → member
	forgotten map[string]map[string]bool    // audience id → hashes deleted permanently
	inflight  int
	refused   int // requests refused for too many connections
	latency   fakevendor.Setting[time.Duration]
}

var _ connectortest.RecoverableVendor = (*Fake)(nil)

type member struct {
	email  string
	status string // subscribed, unsubscribed, archived, …
}

var hashRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Start starts a fake holding the Audiences, empty, that stops when the
// test ends.
func Start(t testing.TB, opt Options) *Fake {
	t.Helper()
	f := &Fake{key: fakevendor.NewKey(DefaultKey), lists: map[string]map[string]*member{}, forgotten: map[string]map[string]bool{}}
	for _, l := range Audiences() {
		f.AddAudience(l)
	}
	// Basic auth: any user name, the key as the password.
	srv := fakevendor.Start(t, opt, fakevendor.Vendor{TooMany: TooManyConnections, Auth: fakevendor.Auth{
		OK:     func(r *http.Request) bool { _, pass, ok := r.BasicAuth(); return ok && pass == f.key.Get() },
		Refuse: Refused,
		Keys:   []*fakevendor.Key{f.key},
	}})
	f.Controls = srv.Controls()
	srv.Handle("GET /3.0/lists", f.throttled(f.getLists))
	srv.Handle("GET /3.0/lists/{list}", f.throttled(f.getList))
	srv.Handle("GET /3.0/lists/{list}/members/{hash}", f.throttled(f.withMember(f.getMember)))
	srv.Handle("DELETE /3.0/lists/{list}/members/{hash}", f.throttled(f.withMember(f.archiveMember)))
	srv.Handle("POST /3.0/lists/{list}/members/{hash}/actions/delete-permanent", f.throttled(f.withMember(f.deletePermanent)))
	return f
}

// Key is the API key the fake accepts.
func (f *Fake) Key() string { return f.key.Get() }

// SetKey changes the API key the fake accepts (another Mailchimp account).
func (f *Fake) SetKey(key string) { f.key.Set(key) }

// Refused is Mailchimp's answer to a key it does not accept.
func Refused(w http.ResponseWriter, _ *http.Request) {
	WriteProblem(w, http.StatusUnauthorized, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter.")
}

// Config is a mailchimp connector config against f, for the Audiences.
// Subjects are found by Email.
func (f *Fake) Config() string {
	return ConfigFor(f.URL(), f.Key(), Audiences()...)
}

// ConfigFor is a mailchimp connector config for a fake at base, with key,
// for the given audiences (none: all_lists).
func ConfigFor(base, key string, lists ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "api_key: %q\nbase_url: %q\n", key, base)
	if len(lists) == 0 {
		b.WriteString("all_lists: true\n")
		return b.String()
	}
	b.WriteString("lists:\n")
	for _, l := range lists {
		fmt.Fprintf(&b, "  - %q\n", l)
	}
	return b.String()
}

// Seed adds the subject's email (it needs one) to the first two of the
// Audiences.
func (f *Fake) Seed(s connectors.Subject) int64 {
	a := Audiences()
	f.Add(fakevendor.NeedEmail("mailchimpfake: Seed", s), a[0], a[1])
	return 2
}

// SeedRecoverable archives the subject's email (it needs one) in the
// first of the Audiences, as Mailchimp's plain DELETE (or "Archive" in the
// app) does: the member's data stays and it can be re-added; Count counts
// it.
func (f *Fake) SeedRecoverable(s connectors.Subject) int64 {
	email, a := fakevendor.NeedEmail("mailchimpfake: SeedRecoverable", s), Audiences()
	f.Add(email, a[0])
	f.Archive(email, a[0])
	return 1
}

// Count is how many audiences hold the subject's email, archived members
// included.
func (f *Fake) Count(s connectors.Subject) int64 {
	if s.Email == "" {
		return 0
	}
	return f.CountEmail(s.Email)
}

// Limited counts the requests refused for too many simultaneous
// connections or by Options.RateLimit.
func (f *Fake) Limited() int {
	f.mu.Lock()
	n := f.refused
	f.mu.Unlock() // the server checks credentials (f.mu) under its own lock: never the other way round
	return n + f.Controls.Limited()
}

// SetLatency makes every request take d, so connections pile up.
func (f *Fake) SetLatency(d time.Duration) { f.latency.Set(d) }

// WriteProblem writes Mailchimp's error document (RFC 7807 style).
func WriteProblem(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"type":"https://mailchimp.com/developer/marketing/docs/errors/","title":%q,"status":%d,"detail":%q,"instance":"5b3c1a9e-0000-4000-8000-000000000000"}`,
		title, status, detail)
}

func notFound(w http.ResponseWriter) {
	WriteProblem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.")
}

// TooManyConnections is Mailchimp's throttling answer: 429 with no
// Retry-After and no rate-limit headers.
func TooManyConnections(w http.ResponseWriter, _ *http.Request) {
	WriteProblem(w, http.StatusTooManyRequests, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections.")
}

// Unavailable is a 503 from Mailchimp's edge.
func Unavailable(w http.ResponseWriter, _ *http.Request) {
	WriteProblem(w, http.StatusServiceUnavailable, "Service Unavailable", "The service is temporarily unavailable.")
}

// throttled applies Mailchimp's limit on simultaneous connections.
func (f *Fake) throttled(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.inflight++
		over := f.inflight > maxConns
		if over {
			f.refused++
		}
		latency := f.latency.Get()
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			f.inflight--
			f.mu.Unlock()
		}()
		if over {
			TooManyConnections(w, r)
			return
		}
		time.Sleep(latency)
		h(w, r)
	}
}

// AddAudience creates an empty audience.
func (f *Fake) AddAudience(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lists[id] == nil {
		f.lists[id] = map[string]*member{}
	}
}

// SubscriberHash is Mailchimp's name for a member: the hex MD5 of the
// lower-cased address.
func SubscriberHash(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(email)))
	return hex.EncodeToString(sum[:])
}

// Add puts email in each audience, as a subscriber.
func (f *Fake) Add(email string, lists ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range lists {
		if f.lists[l] == nil {
			panic("mailchimpfake: no audience " + l)
		}
		f.lists[l][SubscriberHash(email)] = &member{email: email, status: "subscribed"}
	}
}

// Archive archives email's membership of list (it must be a member).
func (f *Fake) Archive(email, list string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists[list][SubscriberHash(email)].status = "archived"
}

// Status is email's member status in list ("" when not a member).
func (f *Fake) Status(email, list string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.lists[list][SubscriberHash(email)]; m != nil {
		return m.status
	}
	return ""
}

// CountEmail is how many audiences hold email, archived members included.
func (f *Fake) CountEmail(email string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, members := range f.lists {
		if members[SubscriberHash(email)] != nil {
			n++
		}
	}
	return n
}

// Forgotten reports whether email was deleted permanently from list.
func (f *Fake) Forgotten(list, email string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.forgotten[list][SubscriberHash(email)]
}

func (f *Fake) getLists(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	count, offset := 10, 0
	if v := q.Get("count"); v != "" {
		count, _ = strconv.Atoi(v)
	}
	if v := q.Get("offset"); v != "" {
		offset, _ = strconv.Atoi(v)
	}
	if count < 1 || count > 1000 || offset < 0 {
		WriteProblem(w, http.StatusBadRequest, "Invalid Resource", "count must be 1 to 1000")
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

func (f *Fake) getList(w http.ResponseWriter, r *http.Request) {
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

// withMember runs h, under the lock, on the member a request names,
// answering 404 when there is none. Mailchimp would also take an address
// or contact id here; the fake takes only the documented hash, so a
// connector sending anything else finds nobody and the tests notice.
func (f *Fake) withMember(h func(w http.ResponseWriter, r *http.Request, members map[string]*member, hash string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		hash := r.PathValue("hash")
		members, ok := f.lists[r.PathValue("list")]
		if !ok || !hashRe.MatchString(hash) || members[hash] == nil {
			notFound(w)
			return
		}
		h(w, r, members, hash)
	}
}

func (f *Fake) getMember(w http.ResponseWriter, r *http.Request, members map[string]*member, hash string) {
	m := members[hash]
	fakevendor.JSON(w, http.StatusOK, map[string]any{"id": hash, "email_address": m.email, "status": m.status, "list_id": r.PathValue("list")})
}

// archiveMember is the plain DELETE: the member is archived, not erased.
func (f *Fake) archiveMember(w http.ResponseWriter, _ *http.Request, members map[string]*member, hash string) {
	members[hash].status = "archived"
	w.WriteHeader(http.StatusNoContent)
}

// deletePermanent removes the member whatever its status, archived
// included (⚠ Mailchimp documents the action for list members without
// excluding archived ones).
func (f *Fake) deletePermanent(w http.ResponseWriter, r *http.Request, members map[string]*member, hash string) {
	delete(members, hash)
	list := r.PathValue("list")
	if f.forgotten[list] == nil {
		f.forgotten[list] = map[string]bool{}
	}
	f.forgotten[list][hash] = true
	w.WriteHeader(http.StatusNoContent)
}
