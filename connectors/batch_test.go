package connectors_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
)

func TestGroupRefs(t *testing.T) {
	bad := errors.New("not ours")
	g := connectors.GroupRefs([]string{"b:1", "x", "a:2", "b:3"}, func(ref string) (string, string, error) {
		job, part, ok := strings.Cut(ref, ":")
		if !ok {
			return "", "", bad
		}
		return part, job, nil
	})
	if got := fmt.Sprint(g.Jobs, g.ByJob, g.Refs); got != "[b a] map[a:[2] b:[0 3]] [1  2 3]" {
		t.Errorf("grouped as %s", got)
	}
	if len(g.Items) != 4 || !errors.Is(g.Items[1].Err, bad) || g.Items[0].Err != nil {
		t.Errorf("items %+v: want four, the unreadable one with its error", g.Items)
	}
}

func TestChunks(t *testing.T) {
	for _, tc := range []struct {
		n, size int
		want    string
	}{{0, 3, "[]"}, {3, 3, "[[0 3]]"}, {7, 3, "[[0 3] [3 6] [6 7]]"}} {
		if got := fmt.Sprint(connectors.Chunks(tc.n, tc.size)); got != tc.want {
			t.Errorf("Chunks(%d, %d) = %s, want %s", tc.n, tc.size, got, tc.want)
		}
	}
}
