package fakevendor_test

import (
	"net/http"
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
