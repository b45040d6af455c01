package connectortest_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	_ "github.com/lethe-dev/lethe/connectors/amplitude"
	"github.com/lethe-dev/lethe/connectors/amplitude/amplitudefake"
	_ "github.com/lethe-dev/lethe/connectors/braze"
	"github.com/lethe-dev/lethe/connectors/braze/brazefake"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
	_ "github.com/lethe-dev/lethe/connectors/hubspot"
	"github.com/lethe-dev/lethe/connectors/hubspot/hubspotfake"
	_ "github.com/lethe-dev/lethe/connectors/intercom"
	"github.com/lethe-dev/lethe/connectors/intercom/intercomfake"
	_ "github.com/lethe-dev/lethe/connectors/iterable"
	"github.com/lethe-dev/lethe/connectors/iterable/iterablefake"
	_ "github.com/lethe-dev/lethe/connectors/klaviyo"
	"github.com/lethe-dev/lethe/connectors/klaviyo/klaviyofake"
	_ "github.com/lethe-dev/lethe/connectors/mailchimp"
	"github.com/lethe-dev/lethe/connectors/mailchimp/mailchimpfake"
	_ "github.com/lethe-dev/lethe/connectors/mixpanel"
	"github.com/lethe-dev/lethe/connectors/mixpanel/mixpanelfake"
	_ "github.com/lethe-dev/lethe/connectors/s3"
	"github.com/lethe-dev/lethe/connectors/s3/s3fake"
	_ "github.com/lethe-dev/lethe/connectors/salesforce"
	"github.com/lethe-dev/lethe/connectors/salesforce/salesforcefake"
	_ "github.com/lethe-dev/lethe/connectors/segment"
	"github.com/lethe-dev/lethe/connectors/segment/segmentfake"
	_ "github.com/lethe-dev/lethe/connectors/sendgrid"
	"github.com/lethe-dev/lethe/connectors/sendgrid/sendgridfake"
	_ "github.com/lethe-dev/lethe/connectors/stripe"
	"github.com/lethe-dev/lethe/connectors/stripe/stripefake"
	_ "github.com/lethe-dev/lethe/connectors/webhook"
	"github.com/lethe-dev/lethe/connectors/webhook/webhookfake"
	_ "github.com/lethe-dev/lethe/connectors/zendesk"
	"github.com/lethe-dev/lethe/connectors/zendesk/zendeskfake"
)

// vendor starts one fake vendor with a rate limit (0: none) and a number
// of unfinished polls (0: its default).
type vendor struct {
	typ   string
	async bool
	// refusal is the status the vendor refuses requests over its rate
	// limit with.
	refusal int
	start   func(t testing.TB, rate float64, polls int) connectortest.Vendor
}

// starter adapts a fake's Start: every fake takes fakevendor.Options.
func starter[F connectortest.Vendor](start func(testing.TB, fakevendor.Options) F) func(testing.TB, float64, int) connectortest.Vendor {
	return func(t testing.TB, rate float64, polls int) connectortest.Vendor {
		return start(t, fakevendor.Options{RateLimit: rate, Polls: polls})
	}
}

func vendors() []vendor {
	return []vendor{
		{"hubspot", false, http.StatusTooManyRequests, starter(hubspotfake.Start)},
		{"salesforce", true, http.StatusForbidden, starter(salesforcefake.Start)},
		{"mailchimp", false, http.StatusTooManyRequests, starter(mailchimpfake.Start)},
		{"sendgrid", true, http.StatusTooManyRequests, starter(sendgridfake.Start)},
		{"iterable", false, http.StatusTooManyRequests, starter(iterablefake.Start)}, // its wait is Lethe's, no vendor job
		{"segment", true, http.StatusTooManyRequests, starter(segmentfake.Start)},
		{"mixpanel", true, http.StatusTooManyRequests, starter(mixpanelfake.Start)},
		{"amplitude", true, http.StatusTooManyRequests, starter(amplitudefake.Start)},
		{"s3", false, http.StatusServiceUnavailable, starter(s3fake.Start)},
		{"webhook", true, http.StatusTooManyRequests, starter(webhookfake.Start)},
		{"braze", true, http.StatusTooManyRequests, starter(brazefake.Start)},
		{"klaviyo", true, http.StatusTooManyRequests, starter(klaviyofake.Start)},
		{"intercom", false, http.StatusTooManyRequests, starter(intercomfake.Start)},
		{"stripe", false, http.StatusTooManyRequests, starter(stripefake.Start)},
		{"zendesk", false, http.StatusTooManyRequests, starter(zendeskfake.Start)}, // two jobs in a row: its own suite counts their polls
		// Shopify's throttled answer is a 200 (its own suite counts those).
	}
}

// TestAllFakesAtOnce is what an end-to-end test does: every fake up at
// once, one subject (an email and a user id under UserIDSystem) seeded in
// each, and one erasure fanned out to every connector, each built from
// its fake's Config.
func TestAllFakesAtOnce(t *testing.T) {
	t.Parallel()
	s := connectors.Subject{Email: "ada@example.com", UserIDs: map[string]string{connectortest.UserIDSystem: "u-42"}}
	bystander := connectors.Subject{Email: "bob@example.com", UserIDs: map[string]string{connectortest.UserIDSystem: "u-43"}}
	var wg sync.WaitGroup
	for _, v := range vendors() {
		f := v.start(t, 0, 0)
		want, keep := f.Seed(s), f.Seed(bystander)
		c := connectortest.Build(t, v.typ, v.typ, f.Config())
		wg.Go(func() {
			out, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, s, 10*time.Second)
			if err != nil || out.Status != connectors.StatusErased || (!out.Uncounted && out.Records != want) {
				t.Errorf("%s: Erase = %q with %d records, %v; want erased with %d", v.typ, out.Status, out.Records, err, want)
			}
			if n := f.Count(s); n != 0 {
				t.Errorf("%s: %d records of the subject left", v.typ, n)
			}
			if n := f.Count(bystander); n != keep {
				t.Errorf("%s: the bystander has %d records of %d", v.typ, n, keep)
			}
			if f.Requests() == 0 || f.Limited() != 0 {
				t.Errorf("%s: %d requests, %d refused", v.typ, f.Requests(), f.Limited())
			}
		})
	}
	wg.Wait()
}

// TestRateLimitOption checks that Options.RateLimit makes each fake
// refuse as its vendor does, that the connector takes the refusal for a
// reason to retry later, and that Limited counts it.
func TestRateLimitOption(t *testing.T) {
	t.Parallel()
	for _, v := range vendors() {
		t.Run(v.typ, func(t *testing.T) {
			t.Parallel()
			f := v.start(t, 0.001, 0) // one request, then none for 1,000s
			c := connectortest.Build(t, v.typ, v.typ, f.Config())
			var err error
			for i := 0; err == nil && i < 3; i++ {
				_, err = c.Erase(connectortest.Ctx(t), connectortest.VendorSubject(i))
			}
			if err == nil {
				t.Fatal("three erasures against one request per 1,000s all succeeded")
			}
			if perm, after := connectors.Classify(err); perm {
				t.Errorf("a rate-limit refusal is permanent: %v (after %v)", err, after)
			}
			if f.Limited() == 0 || f.Limited() >= f.Requests() {
				t.Errorf("%d of %d requests refused", f.Limited(), f.Requests())
			}
			calls := f.(interface{ Calls() []fakevendor.Call }).Calls()
			if p, ok := f.(interface{ ProfileCalls() []fakevendor.Call }); ok {
				calls = append(calls, p.ProfileCalls()...)
			}
			refused := 0
			for _, call := range calls {
				if call.Status == v.refusal {
					refused++
				}
			}
			if refused != f.Limited() {
				t.Errorf("%d requests answered %d, %d refused by the rate limit", refused, v.refusal, f.Limited())
			}
		})
	}
}

// TestPollsOption checks that Options.Polls is how many polls an
// asynchronous job stays unfinished, negative meaning none.
func TestPollsOption(t *testing.T) {
	t.Parallel()
	for _, v := range vendors() {
		if !v.async {
			continue
		}
		for _, polls := range []int{-1, 3} {
			t.Run(fmt.Sprintf("%s/polls=%d", v.typ, polls), func(t *testing.T) {
				t.Parallel()
				f := v.start(t, 0, polls)
				s := connectortest.VendorSubject(1)
				f.Seed(s)
				c := connectortest.Build(t, v.typ, v.typ, f.Config())
				out, err := c.Erase(connectortest.Ctx(t), s)
				if err != nil || out.Status != connectors.StatusRunning {
					t.Fatalf("Erase = %q, %v; want running", out.Status, err)
				}
				var n int
				for out.Status == connectors.StatusRunning && n < 10 {
					n++
					if out, err = c.(connectors.Poller).Poll(connectortest.Ctx(t), out.JobRef); err != nil {
						t.Fatal(err)
					}
				}
				if want := max(polls, 0) + 1; n != want || out.Status != connectors.StatusErased {
					t.Errorf("Polls %d: %q after %d polls, want erased after %d", polls, out.Status, n, want)
				}
				if left := f.Count(s); left != 0 {
					t.Errorf("%d records left", left)
				}
			})
		}
	}
}
