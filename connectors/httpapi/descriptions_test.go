package httpapi_test

import (
	_ "embed"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
	_ "github.com/lethe-dev/lethe/connectors/httpapi"
	"github.com/lethe-dev/lethe/connectors/hubspot/hubspotfake"
	"github.com/lethe-dev/lethe/connectors/mixpanel/mixpanelfake"
)

// The descriptions users copy, run here through the fakes and suites the
// Go hubspot and mixpanel connectors run through.
var (
	//go:embed descriptions/hubspot.yaml
	hubspotDescription string
	//go:embed descriptions/mixpanel.yaml
	mixpanelDescription string
)

// hubspot is the HubSpot fake answering the hubspot description: its
// Config is the description pointed at the fake, with its token.
type hubspot struct{ *hubspotfake.Fake }

func (h hubspot) Config() string {
	return fakevendor.MergeYAML(hubspotDescription, "base_url: "+h.URL(), "auth:\n  bearer: "+h.Token())
}

func startHubSpot(t testing.TB) connectortest.FaultyVendor {
	return hubspot{hubspotfake.Start(t, hubspotfake.Options{})}
}

// mixpanel is the Mixpanel fake answering the mixpanel description,
// polling every 2ms.
type mixpanel struct{ *mixpanelfake.Fake }

func (m mixpanel) Config() string {
	project, token := m.Tokens()
	return fakevendor.MergeYAML(strings.Replace(mixpanelDescription, "poll_interval: 12h", "poll_interval: 2ms", 1),
		"base_url: "+m.URL(), "auth:\n  bearer: "+token, "secrets:\n  project_token: "+project)
}

func startMixpanel(t testing.TB) connectortest.FaultyVendor {
	return mixpanel{mixpanelfake.Start(t, mixpanelfake.Options{})}
}

func TestHubSpotDescription(t *testing.T) {
	t.Parallel()
	connectortest.RunVendor(t, connectortest.VendorSuite{
		VendorCases: connectortest.VendorCases{
			Type:  "http",
			Start: startHubSpot,
			// HubSpot's SECONDLY 429 names no delay; rate_limit waits a second.
			MinRetryAfter: time.Second, MaxRetryAfter: time.Second, Credential: "credentials",
			// Requests: the contact lookup, the archived lookup, the delete.
			Unread: map[string]string{"malformed/2": "the GDPR delete answers 204 No Content, whose body is not read"},
		},
		Misconfigured: "base_url: {url}/hubspot-proxy", // 404s that are not HubSpot's "no such contact"
		ResolvesIn: func(f connectortest.FaultyVendor, s connectors.Subject) map[connectors.Kind][]string {
			return map[connectors.Kind][]string{
				connectors.UserIDKind(connectortest.UserIDSystem): {s.UserIDs[connectortest.UserIDSystem]},
				connectors.UserIDKind("hubspot"):                  f.(hubspot).RecordIDs(s.Email),
			}
		},
	})
}

func TestHubSpotDescriptionResolveCases(t *testing.T) {
	t.Parallel()
	connectortest.RunResolveCases(t, connectortest.ResolveCases{
		Start: startHubSpot,
		New: func(t *testing.T, f connectortest.FaultyVendor) connectors.Resolver {
			return connectortest.Build(t, "http", "crm", f.Config()).(connectors.Resolver)
		},
		TooMany: hubspotfake.TooMany("SECONDLY", 0), TooManyAfter: time.Second,
		Refused:        hubspotfake.Unauthorized,
		NobodyEvidence: "lookup=contact: 0 found by email; archived contact: 0 found by email; ",
	})
}

// TestHubSpotDescriptionRecycleBin: an archived contact is deleted too
// and looked for again; one HubSpot keeps in its recycle bin fails the
// erasure, and Verify never calls it clean.
func TestHubSpotDescriptionRecycleBin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		answer hubspotfake.ArchivedDelete
		want   string
	}{
		{hubspotfake.ArchivedPurged, ""},
		{hubspotfake.ArchivedIgnored, "HubSpot's recycle bin"},
		{hubspotfake.ArchivedNotFound, "HubSpot's recycle bin"},
	} {
		t.Run(string(tc.answer), func(t *testing.T) {
			t.Parallel()
			f := hubspot{hubspotfake.Start(t, hubspotfake.Options{})}
			f.AnswerArchivedDelete(tc.answer)
			s := connectortest.VendorSubject(5)
			f.Seed(s)
			f.SeedRecoverable(s)
			c := connectortest.Build(t, "http", "crm", f.Config())
			out, err := c.Erase(connectortest.Ctx(t), s)
			if tc.want == "" {
				if err != nil || out.Status != connectors.StatusErased || out.Records != 2 || f.Count(s) != 0 {
					t.Fatalf("Erase = %+v, %v with %d left; want 2 erased, none left", out, err, f.Count(s))
				}
				if ev := connectortest.EvidenceText(out.Evidence); !strings.Contains(ev, "archived contact: 1 found by email (recoverable: HubSpot's recycle bin") {
					t.Errorf("evidence %q does not say where the second contact was", ev)
				}
				return
			}
			if err == nil || !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), s.Email) {
				t.Fatalf("Erase = %+v, %v; want a permanent error naming %q", out, err, tc.want)
			}
			v, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), s)
			if err != nil || v.Remaining != 1 {
				t.Fatalf("Verify = %+v, %v; want the archived contact remaining", v, err)
			}
		})
	}
}

func TestMixpanelDescription(t *testing.T) {
	t.Parallel()
	connectortest.RunVendor(t, connectortest.VendorSuite{
		VendorCases: connectortest.VendorCases{
			Type:  "http",
			Start: startMixpanel,
			// Mixpanel's 429 names no delay; the GDPR API allows one a second.
			MinRetryAfter: time.Second, MaxRetryAfter: time.Second, Credential: "credentials",
		},
		Misconfigured: "base_url: {url}/api/2.0",
		Hostile: []connectors.Subject{
			connectortest.VendorUserID("user-60%"), connectortest.VendorUserID("*"), connectortest.VendorUserID("../t-0001"), connectortest.VendorUserID("user-600?token=x"),
			connectortest.VendorUserID("user-600' OR '1'='1"), connectortest.VendorUserID("user-600\",\"user-601"),
		},
	})
}

// TestMixpanelDescriptionStates: each of Mixpanel's final states ends
// the erasure as the description maps it.
func TestMixpanelDescriptionStates(t *testing.T) {
	t.Parallel()
	for final, want := range map[string]string{
		"REVOKED": "permanent", "FAILURE": "retryable", "EXPIRED": "retryable: not mapped", "NOT_FOUND": "not_found",
	} {
		t.Run(final, func(t *testing.T) {
			t.Parallel()
			f := mixpanel{mixpanelfake.Start(t, mixpanelfake.Options{})}
			s := connectortest.VendorSubject(3)
			f.Seed(s)
			f.EndTasksAs(final)
			out, err := connectortest.EraseAndWait(connectortest.Ctx(t), connectortest.Build(t, "http", "mp", f.Config()), s, 5*time.Second)
			perm, _ := connectors.Classify(err)
			got := string(out.Status)
			switch {
			case err != nil && perm:
				got = "permanent"
			case err != nil && strings.Contains(err.Error(), "does not map"):
				got = "retryable: not mapped"
			case err != nil:
				got = "retryable"
			}
			if got != want {
				t.Errorf("a task ending %s: %q, %v; want %s", final, out.Status, err, want)
			}
		})
	}
}
