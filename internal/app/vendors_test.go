package app_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/amplitude/amplitudefake"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/hubspot/hubspotfake"
	"github.com/lethe-dev/lethe/connectors/mailchimp/mailchimpfake"
	"github.com/lethe-dev/lethe/connectors/mixpanel/mixpanelfake"
	"github.com/lethe-dev/lethe/connectors/s3/s3fake"
	"github.com/lethe-dev/lethe/connectors/salesforce/salesforcefake"
	"github.com/lethe-dev/lethe/connectors/segment/segmentfake"
	"github.com/lethe-dev/lethe/connectors/sendgrid/sendgridfake"
	"github.com/lethe-dev/lethe/connectors/webhook/webhookfake"
	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// instanceYAML is one connectors[] entry for a fake vendor, its config
// block indented under it.
func instanceYAML(name, typ, extra string, v connectortest.Vendor) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n  - name: %s\n    type: %s\n%s    config:\n", name, typ, extra)
	for _, line := range strings.Split(strings.TrimRight(v.Config(), "\n"), "\n") {
		b.WriteString("      " + line + "\n")
	}
	return b.String()
}

// TestFanOutToEveryVendor: one request fans out to every vendor connector
// at once, against fakes that follow each vendor's contract — HubSpot's
// fake limits hard (2 requests a second, burst 2) and Salesforce's bulk job stays
// unfinished for several polls — and ends in one certificate listing
// every system with what it erased. A bystander is left alone everywhere.
func TestFanOutToEveryVendor(t *testing.T) {
	ns := testenv.NATS(t)
	vendors := map[string]connectortest.Vendor{
		"hubspot":    hubspotfake.Start(t, hubspotfake.Options{RateLimit: 2, Burst: 2}),
		"salesforce": salesforcefake.Start(t, salesforcefake.Options{Polls: 4}),
		"mailchimp":  mailchimpfake.Start(t, mailchimpfake.Options{}),
		"sendgrid":   sendgridfake.Start(t, sendgridfake.Options{Polls: 2}),
		"segment":    segmentfake.Start(t, segmentfake.Options{}),
		"mixpanel":   mixpanelfake.Start(t, mixpanelfake.Options{}),
		"amplitude":  amplitudefake.Start(t, amplitudefake.Options{}),
		"s3":         s3fake.Start(t, s3fake.Options{}),
		"webhook":    webhookfake.Start(t, webhookfake.Options{}),
	}
	names := make([]string, 0, len(vendors))
	for n := range vendors {
		names = append(names, n)
	}
	sort.Strings(names)
	var yaml strings.Builder
	for _, n := range names {
		yaml.WriteString(instanceYAML(n, n, "", vendors[n]))
	}
	in := newInstance(t, ns.ClientURL(), yaml.String(), "")
	logs := in.serve(t)
	base := "http://" + in.addr

	person := connectors.Subject{Email: "fan.out@example.com", UserIDs: map[string]string{connectortest.UserIDSystem: "user-fan-out"}}
	bystander := connectors.Subject{Email: "stays@example.com", UserIDs: map[string]string{connectortest.UserIDSystem: "user-stays"}}
	want := map[string]int64{}
	for n, v := range vendors {
		want[n] = v.Seed(person)
		v.Seed(bystander)
	}
	var r apiRequest
	body := `{"subject":{"email":"fan.out@example.com","user_ids":{"app":"user-fan-out"}},"jurisdiction":"gdpr"}`
	if code := call(t, "POST", base+"/v1/requests", in.agentToken, body, &r); code != 201 {
		t.Fatalf("file = %d", code)
	}
	got := waitStatus(t, base, in.agentToken, r.ID, 90*time.Second, "completed")
	for _, task := range got.Tasks {
		if task.Status != "erased" || task.RecordsErased != want[task.Connector] {
			t.Errorf("%s: %s, %d records (want erased, %d): %s", task.Connector, task.Status, task.RecordsErased, want[task.Connector], task.LastError)
		}
	}
	for n, v := range vendors {
		if c := v.Count(person); c != 0 {
			t.Errorf("%s still holds %d records about the person", n, c)
		}
		if c := v.Count(bystander); c == 0 {
			t.Errorf("%s lost the bystander's records", n)
		}
	}
	var keys certificate.JWKS
	call(t, "GET", base+"/v1/keys", "", "", &keys)
	v, err := certificate.Verify(getCertificate(t, base, in.agentToken, r.ID), keys)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, s := range v.Payload.Systems {
		listed[s.Connector] = true
		if s.Outcome != "erased" || s.RecordsErased.N != want[s.Connector] {
			t.Errorf("certificate: %s %s %v records", s.Connector, s.Outcome, s.RecordsErased)
		}
	}
	if len(listed) != len(vendors) {
		t.Errorf("certificate lists %d systems, want %d: %v", len(listed), len(vendors), listed)
	}
	t.Logf("HubSpot's fake refused %d of %d requests; the task still finished", vendors["hubspot"].Limited(), vendors["hubspot"].Requests())
	if strings.Contains(logs.String(), person.Email) || strings.Contains(logs.String(), "user-fan-out") {
		t.Error("the logs name the person")
	}
}

// BenchmarkVendorRate files a backlog of requests for one vendor whose
// fake allows R requests a second (burst 1, answering 429 beyond it, as
// Mailchimp does), with the connector instance configured just under it
// (0.9 R: the runtime takes a token per vendor request, and two limiters
// at exactly the same rate drift into each other), run by one or by two
// `lethe serve` replicas.
// It reports the share of R achieved over the whole backlog and how many
// requests the fake refused: close to 1 and close to 0 mean Lethe uses
// the vendor's allowance without a 429 storm, however many replicas share
// it (the limit is one budget across processes).
//
//	go test ./internal/app -run '^$' -bench VendorRate -benchtime 100x
func BenchmarkVendorRate(b *testing.B) {
	for _, replicas := range []int{1, 2} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) { benchVendorRate(b, replicas) })
	}
}

func benchVendorRate(b *testing.B, replicas int) {
	const rate = 20.0
	ns := testenv.NATS(b)
	f := mailchimpfake.Start(b, mailchimpfake.Options{RateLimit: rate, Burst: 1})
	list := mailchimpfake.Audiences()[0]
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "\n  - name: newsletter\n    type: mailchimp\n    concurrency: 4\n    rate_per_second: %g\n    burst: 1\n    config:\n", 0.9*rate)
	for _, line := range strings.Split(strings.TrimRight(mailchimpfake.ConfigFor(f.URL(), f.Key(), list), "\n"), "\n") {
		cfg.WriteString("      " + line + "\n")
	}
	in := newInstance(b, ns.ClientURL(), cfg.String(), "")
	in.serve(b)
	for range replicas - 1 {
		in.replica(b).serve(b)
	}
	base := "http://" + in.addr
	for i := range b.N {
		f.Add(fmt.Sprintf("rate%d@example.com", i), list)
	}
	before, limitedBefore := f.Requests(), f.Limited()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		body := fmt.Sprintf(`{"subject":{"email":"rate%d@example.com"},"jurisdiction":"gdpr"}`, i)
		if code := call(b, "POST", base+"/v1/requests", in.adminToken, body, nil); code != 201 {
			b.Fatalf("file: %d", code)
		}
	}
	waitCertificates(b, base, b.N, 10*time.Minute)
	elapsed := time.Since(start)
	calls := f.Requests() - before
	b.ReportMetric(float64(calls)/elapsed.Seconds()/rate, "share_of_R")
	b.ReportMetric(float64(f.Limited()-limitedBefore), "429s")
	b.ReportMetric(float64(calls)/float64(b.N), "calls/request")
}
