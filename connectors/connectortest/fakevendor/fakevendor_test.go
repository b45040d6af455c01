package fakevendor_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

func TestMergeYAML(t *testing.T) {
	t.Parallel()
	const base = "token: a\nprofiles:\n  space_id: spa_1\n  token: p\npoll_interval: 2ms\n"
	for _, tc := range []struct {
		name string
		set  []string
		want string
	}{
		{"nothing", nil, base},
		{"replace", []string{"poll_interval: 90m"}, "token: a\nprofiles:\n  space_id: spa_1\n  token: p\npoll_interval: 90m\n"},
		{"add", []string{"user_id_system: app"}, base + "user_id_system: app\n"},
		{"remove a block", []string{"profiles:"}, "token: a\npoll_interval: 2ms\n"},
		{"remove what is not there", []string{"regulation_type:"}, base},
		{"replace a block", []string{"profiles:\n  space_id: spa_2"}, "token: a\nprofiles:\n  space_id: spa_2\npoll_interval: 2ms\n"},
		{"nested key untouched", []string{"token: b"}, "token: b\nprofiles:\n  space_id: spa_1\n  token: p\npoll_interval: 2ms\n"},
		{"later wins", []string{"token:", "token: c"}, "profiles:\n  space_id: spa_1\n  token: p\npoll_interval: 2ms\ntoken: c\n"},
		{"several in one item", []string{"token: b\npoll_interval: 1s"}, "token: b\nprofiles:\n  space_id: spa_1\n  token: p\npoll_interval: 1s\n"},
		{"empty item", []string{""}, base},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := fakevendor.MergeYAML(base, tc.set...); got != tc.want {
				t.Errorf("MergeYAML(%q) =\n%s\nwant\n%s", tc.set, got, tc.want)
			}
		})
	}
}

func TestPolls(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ n, def, want int }{{0, 2, 2}, {-1, 2, 0}, {5, 2, 5}} {
		if got := fakevendor.Polls(tc.n, tc.def); got != tc.want {
			t.Errorf("Polls(%d, %d) = %d, want %d", tc.n, tc.def, got, tc.want)
		}
	}
}

func TestControlsCountRequestsAndRefusals(t *testing.T) {
	t.Parallel()
	s := fakevendor.New(t)
	s.Handle("GET /ok", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	s.RateLimit(1, 2, fakevendor.TooMany(0))
	c := s.Controls()
	// The first request meets a fault that lets it through to the endpoint.
	c.Inject(1, c.PassThrough())
	for range 4 {
		resp, err := http.Get(c.URL() + "/ok")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	var statuses []int
	for _, call := range c.Calls() {
		statuses = append(statuses, call.Status)
	}
	// A fault skips the limiter: the burst of 2 serves the next two.
	want := []int{http.StatusNoContent, http.StatusNoContent, http.StatusNoContent, http.StatusTooManyRequests}
	if len(statuses) != len(want) {
		t.Fatalf("statuses %v, want %v", statuses, want)
	}
	for i := range want {
		if statuses[i] != want[i] {
			t.Fatalf("statuses %v, want %v", statuses, want)
		}
	}
	if c.Requests() != 4 || c.Limited() != 1 {
		t.Errorf("Requests %d, Limited %d; want 4 and 1", c.Requests(), c.Limited())
	}
}

func TestStartAppliesOptionsAndAuth(t *testing.T) {
	t.Parallel()
	key := fakevendor.NewKey("k1")
	refused := func(w http.ResponseWriter, r *http.Request) {
		fakevendor.JSON(w, http.StatusUnauthorized, map[string]string{"error": "bad key"})
	}
	s := fakevendor.Start(t, fakevendor.Options{RateLimit: 0.001, Burst: 2}, fakevendor.Vendor{
		TooMany: fakevendor.TooMany(0), Polls: 3, Auth: fakevendor.BearerAuth(key, refused)})
	s.Handle("GET /ok", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	if s.JobPolls != 3 {
		t.Errorf("JobPolls %d, want the vendor's default 3", s.JobPolls)
	}
	get := func(token string) int {
		req, _ := http.NewRequest("GET", s.URL+"/ok", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("wrong"); got != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", got)
	}
	key.Set("k2")
	if got := []int{get("k1"), get("k2"), get("k2"), get("k2")}; got[0] != 401 || got[1] != 204 || got[2] != 204 || got[3] != 429 {
		t.Errorf("statuses %v, want 401 (rotated), 204, 204 (burst 2), 429", got)
	}
	if s := fakevendor.Start(t, fakevendor.Options{Polls: -1}, fakevendor.Vendor{Polls: 3}); s.JobPolls != 0 {
		t.Errorf("Polls -1: JobPolls %d", s.JobPolls)
	}
}

func TestAuthSchemes(t *testing.T) {
	t.Parallel()
	user, pass, hdr := fakevendor.NewKey("u"), fakevendor.NewKey("p"), fakevendor.NewKey("h")
	basic := fakevendor.BasicAuth(user, pass, nil)
	header := fakevendor.HeaderAuth("X-Api-Key", hdr, nil)
	req, _ := http.NewRequest("GET", "http://x", nil)
	if basic.OK(req) || header.OK(req) {
		t.Fatal("a request without credentials is accepted")
	}
	req.SetBasicAuth("u", "p")
	req.Header.Set("X-Api-Key", "h")
	if !basic.OK(req) || !header.OK(req) {
		t.Fatal("the right credentials are refused")
	}
	pass.Set("p2")
	if basic.OK(req) {
		t.Error("a rotated password is still accepted")
	}
}

func TestJobEndsOnceAfterItsPolls(t *testing.T) {
	t.Parallel()
	j := fakevendor.NewJob(2)
	var got []string
	for range 5 {
		stage := j.Stage("pending", "staging", "running")
		got = append(got, stage+map[bool]string{true: "+end", false: ""}[j.Poll()])
	}
	want := "pending staging running+end running running"
	if s := strings.Join(got, " "); s != want {
		t.Errorf("stages %q, want %q", s, want)
	}
	if j.Polled != 5 || !j.Ended {
		t.Errorf("job %+v", j)
	}
	if k := fakevendor.NewJob(0); !k.Poll() || k.Poll() {
		t.Error("a job with no unfinished polls must end on its first poll, once")
	}
}

func TestPeople(t *testing.T) {
	var ps fakevendor.People
	ps.Add("Ada@Example.com", "u-1")
	ps.Add("bob@example.com", "")
	ps.Add("", "u-3")
	if got := ps.Count("ada@example.COM", ""); got != 1 {
		t.Errorf("Count by email in another case = %d, want 1", got)
	}
	if got := ps.Count("", ""); got != 0 {
		t.Errorf("empty identifiers matched %d persons, want none", got)
	}
	if got := ps.Find("bob@example.com", "u-3"); len(got) != 2 {
		t.Errorf("Find by either = %v, want bob and u-3", got)
	}
	gone := ps.Remove("", "u-1")
	if len(gone) != 1 || gone[0].Email != "Ada@Example.com" || ps.Count("ada@example.com", "u-1") != 0 {
		t.Errorf("Remove = %v; left %d", gone, ps.Count("ada@example.com", "u-1"))
	}
	if ps.Count("bob@example.com", "u-3") != 2 {
		t.Error("Remove took others")
	}
}

// TestOtherAccount: OtherAccount changes every key the vendor's Auth
// lists to another of the same shape, and counts refusals of the old.
func TestOtherAccount(t *testing.T) {
	t.Parallel()
	keys := []*fakevendor.Key{fakevendor.NewKey("SG.key-9"), fakevendor.NewKey("0123abcdef-us1"), fakevendor.NewKey("pat-z"), fakevendor.NewKey("Z--"), fakevendor.NewKey("--")}
	var auth fakevendor.Auth
	for _, k := range keys {
		auth.Keys = append(auth.Keys, fakevendor.HeaderAuth("X-Key", k, nil).Keys...)
	}
	bearer := fakevendor.BearerAuth(keys[0], fakevendor.Status(http.StatusUnauthorized))
	auth.OK, auth.Refuse = bearer.OK, bearer.Refuse
	c := fakevendor.Start(t, fakevendor.Options{}, fakevendor.Vendor{Auth: auth}).Controls()
	if n := c.OtherAccount(); n != len(keys) {
		t.Fatalf("OtherAccount changed %d keys, want %d", n, len(keys))
	}
	want := []string{"SG.key-0", "0123abcdef-us2", "pat-a", "A--", "--2"}
	for i, k := range keys {
		if k.Get() != want[i] {
			t.Errorf("key %d = %q, want %q", i, k.Get(), want[i])
		}
	}
	req, _ := http.NewRequest("GET", c.URL()+"/", nil)
	req.Header.Set("Authorization", "Bearer SG.key-9")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || c.Refused() != 1 {
		t.Errorf("the old key: %d, %d refused; want 401, 1", resp.StatusCode, c.Refused())
	}
	if n := fakevendor.Start(t, fakevendor.Options{}, fakevendor.Vendor{}).Controls().OtherAccount(); n != 0 {
		t.Errorf("a fake without keys changed %d", n)
	}
}
