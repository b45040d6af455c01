package connectors_test

import (
	"context"
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

// TestOne: a batch of one gives its item's outcome or error; a batch
// call's error, or an answer for other than one, is the caller's error.
func TestOne(t *testing.T) {
	ctx := context.Background()
	bad := errors.New("refused")
	answer := func(items []connectors.Item, err error) func(context.Context, []string) ([]connectors.Item, error) {
		return func(_ context.Context, refs []string) ([]connectors.Item, error) {
			if len(refs) != 1 || refs[0] != "r" {
				t.Fatalf("batch called with %v", refs)
			}
			return items, err
		}
	}
	if out, err := connectors.One(ctx, answer([]connectors.Item{{Outcome: connectors.Outcome{Records: 3}}}, nil), "r"); err != nil || out.Records != 3 {
		t.Errorf("one item: %+v, %v", out, err)
	}
	if _, err := connectors.One(ctx, answer([]connectors.Item{{Err: bad}}, nil), "r"); !errors.Is(err, bad) {
		t.Errorf("the item's error: %v", err)
	}
	if _, err := connectors.One(ctx, answer(nil, bad), "r"); !errors.Is(err, bad) {
		t.Errorf("the call's error: %v", err)
	}
	if _, err := connectors.One(ctx, answer(make([]connectors.Item, 2), nil), "r"); err == nil || !isPermanent(err) {
		t.Errorf("two items for one: %v, want a permanent error", err)
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

func isPermanent(err error) bool { p, _ := connectors.Classify(err); return p }
