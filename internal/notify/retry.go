package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Retry sends mail with m, trying up to attempts times (at least once)
// while the failure is temporary, with a short exponential backoff: it
// rides out a blip, not an outage, which the caller's own redelivery is
// for. It returns the last error.
func Retry(ctx context.Context, m Mailer, mail Mail, attempts int) error {
	attempts = max(attempts, 1)
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 250 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	b.MaxElapsedTime = 0 // attempts bound it
	var last error
	err := backoff.Retry(func() error {
		last = m.Send(ctx, mail)
		if last != nil && !IsTemporary(last) {
			return backoff.Permanent(last)
		}
		return last
	}, backoff.WithContext(backoff.WithMaxRetries(b, uint64(attempts-1)), ctx))
	if cerr := ctx.Err(); err != nil && cerr != nil && last != nil && !errors.Is(last, cerr) {
		// ctx ended while waiting: say so, and what the last try said.
		return fmt.Errorf("%w (last attempt: %w)", cerr, last)
	}
	return err
}
