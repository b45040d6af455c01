package connectors

import "context"

type meterKey struct{}

// WithMeter returns a context whose calls to WaitCall go through wait. The
// runtime puts one in the context of every Erase, Poll and Verify, holding
// the instance to its rate limit (shared by every process that runs it).
func WithMeter(ctx context.Context, wait func(context.Context) error) context.Context {
	return context.WithValue(ctx, meterKey{}, wait)
}

// WaitCall blocks until the instance's rate limit allows one more request
// to the system behind it. A connector that makes several requests in one
// Erase, Poll or Verify calls it before each (vendorhttp.Client.Do does so
// for every HTTP request), so the limit counts the vendor's requests, not
// the connector's calls. The runtime has already waited for the first
// request of each call; a connector that never calls WaitCall is counted
// once per call. Without a meter in ctx it returns at once.
func WaitCall(ctx context.Context) error {
	if wait, ok := ctx.Value(meterKey{}).(func(context.Context) error); ok {
		return wait(ctx)
	}
	return ctx.Err()
}
