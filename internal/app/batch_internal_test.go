package app

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/internal/worker"
	"go.uber.org/zap"
)

const batchBase = `
store: {driver: sqlite, url: /tmp/x.db}
nats: {url: "nats://127.0.0.1:4222"}
signing: {key: {env: K}}
subject: {hash_key: {env: H}}
encryption: {keys: [{id: k1, key: {env: KEK}}]}
`

// buildFrom builds the instances of connectors (YAML list entries) in
// batchBase.
func buildFrom(t *testing.T, connectors string) ([]worker.Instance, error) {
	t.Helper()
	cfg, err := config.Parse([]byte(batchBase + "connectors:\n" + connectors))
	if err != nil {
		t.Fatal(err)
	}
	return buildConnectors(context.Background(), cfg, nil, func(string) string { return "" }, zap.NewNop())
}

// TestBatchWindowWiring: a connector that erases many people a call
// batches by default (1s), as configured, or not at all with 0s; a
// batch_window on one that erases one person a call is an error naming it.
func TestBatchWindowWiring(t *testing.T) {
	seg := func(extra string) string {
		return "  - {name: seg, type: segment" + extra + ", config: {token: t, base_url: \"http://127.0.0.1:1\"}}\n"
	}
	for _, tc := range []struct {
		name, connectors string
		window           time.Duration
		max              int
		err              string
	}{
		{name: "default", connectors: seg(""), window: time.Second},
		{name: "set", connectors: seg(", batch_window: 3s, batch_max: 50"), window: 3 * time.Second, max: 50},
		{name: "off", connectors: seg(", batch_window: 0s"), window: 0},
		{name: "not a batcher", connectors: "  - {name: man, type: manual, batch_window: 2s, config: {instructions: x}}\n",
			err: "man (manual) erases one person a call: batch_window and batch_max do not apply"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ins, err := buildFrom(t, tc.connectors)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ins[0].BatchWindow != tc.window || ins[0].BatchMax != tc.max {
				t.Errorf("batch window %s, max %d; want %s, %d", ins[0].BatchWindow, ins[0].BatchMax, tc.window, tc.max)
			}
		})
	}
}

// TestEndpointRatesWiring: an instance keeps its type's own endpoint
// limits unless endpoint_rates overrides one (its burst defaulting to the
// type's); an override of an endpoint the type does not limit, or a rate
// that is not positive, is an error naming it.
func TestEndpointRatesWiring(t *testing.T) {
	amp := func(extra string) string {
		return "  - {name: amp, type: amplitude" + extra + ", config: {api_key: k, secret_key: s}}\n"
	}
	for _, tc := range []struct {
		name, connectors string
		want             string // fmt of the instance's Endpoints
		err              string
	}{
		{name: "the type's", connectors: amp(""), want: "map[user search:{0.09722222222222222 10}]"},
		{name: "overridden", connectors: amp(`, endpoint_rates: {"user search": {rate_per_second: 0.5}}`), want: "map[user search:{0.5 10}]"},
		{name: "with burst", connectors: amp(`, endpoint_rates: {"user search": {rate_per_second: 0.5, burst: 2}}`), want: "map[user search:{0.5 2}]"},
		{name: "unknown endpoint", connectors: amp(`, endpoint_rates: {"deletions": {rate_per_second: 2}}`),
			err: `amp (amplitude): "deletions" is not an endpoint the type limits on its own (it limits user search)`},
		{name: "type without endpoints", connectors: "  - {name: seg, type: segment, endpoint_rates: {x: {rate_per_second: 1}}, config: {token: t, base_url: \"http://127.0.0.1:1\"}}\n",
			err: `seg (segment): "x": the type limits no endpoint on its own`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ins, err := buildFrom(t, tc.connectors)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(ins[0].Endpoints); got != tc.want {
				t.Errorf("endpoints %s, want %s", got, tc.want)
			}
		})
	}
	t.Run("rate not positive", func(t *testing.T) {
		_, err := config.Parse([]byte(batchBase + "connectors:\n" + amp(`, endpoint_rates: {"user search": {rate_per_second: 0}}`)))
		if err == nil || !strings.Contains(err.Error(), `connectors[0].endpoint_rates["user search"]: rate_per_second must be more than 0`) {
			t.Fatalf("error %v, want the endpoint's rate refused", err)
		}
	})
}
