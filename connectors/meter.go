package connectors

import (
	"context"
	"time"
)

type meterKey struct{}

// WithMeter returns a context whose calls to WaitCall and WaitCallTo go
// through wait, with the op named ("" for WaitCall). The runtime puts one
// in the context of every Erase, Poll and Verify, holding the instance to
// its rate limit and each endpoint to its own (Limits.Endpoints), shared
// by every process that runs it.
func WithMeter(ctx context.Context, wait func(ctx context.Context, op string) error) context.Context {
	return context.WithValue(ctx, meterKey{}, wait)
}

// WaitCall blocks until the instance's rate limit allows one more request
// to the system behind it. A connector that makes several requests in one
// Erase, Poll or Verify calls it before each (vendorhttp.Client.Do does so
// for every HTTP request), so the limit counts the vendor's requests, not
// the connector's calls. The runtime has already waited for the first
// request of each call; a connector that never calls WaitCall is counted
// once per call. Without a meter in ctx it returns at once.
func WaitCall(ctx context.Context) error { return WaitCallTo(ctx, "") }

// WaitCallTo is WaitCall for a request to the endpoint op: where the
// connector's type registered a limit of op's own (Limits.Endpoints), the
// request also waits for that. When no turn comes before ctx's deadline
// it fails at once with an error matching context.DeadlineExceeded, and
// takes no turn.
func WaitCallTo(ctx context.Context, op string) error {
	if wait, ok := ctx.Value(meterKey{}).(func(context.Context, string) error); ok {
		return wait(ctx, op)
	}
	return ctx.Err()
}

type throttleKey struct{}

// WithThrottle returns a context in which a vendor's "too many requests",
// met in the middle of a call, can be waited out and the request sent
// again (Throttled): the runtime sets one for batch calls, whose many
// requests would otherwise all be thrown away by one refusal. throttle
// says whether to wait out a pause of after (zero: none named) of the
// refused request's op, and waits.
func WithThrottle(ctx context.Context, throttle func(ctx context.Context, op string, after time.Duration) bool) context.Context {
	return context.WithValue(ctx, throttleKey{}, throttle)
}

// Throttled is called by a connector (vendorhttp does it for a 429) when
// the vendor refused a request to op as too many: with a throttle in ctx
// it has the runtime slow down and wait the vendor's pause (op's own, where
// op has its own limit), and true says to send the request again. False,
// always without a throttle: fail the call, as for any error.
func Throttled(ctx context.Context, op string, after time.Duration) bool {
	if t, ok := ctx.Value(throttleKey{}).(func(context.Context, string, time.Duration) bool); ok {
		return t(ctx, op, after)
	}
	return false
}
