package app_test

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/amplitude/amplitudefake"
	"github.com/lethe-dev/lethe/connectors/braze/brazefake"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
	"github.com/lethe-dev/lethe/connectors/hubspot/hubspotfake"
	"github.com/lethe-dev/lethe/connectors/intercom/intercomfake"
	"github.com/lethe-dev/lethe/connectors/iterable/iterablefake"
	"github.com/lethe-dev/lethe/connectors/klaviyo/klaviyofake"
	"github.com/lethe-dev/lethe/connectors/mailchimp/mailchimpfake"
	"github.com/lethe-dev/lethe/connectors/mixpanel/mixpanelfake"
	"github.com/lethe-dev/lethe/connectors/s3/s3fake"
	"github.com/lethe-dev/lethe/connectors/salesforce/salesforcefake"
	"github.com/lethe-dev/lethe/connectors/segment/segmentfake"
	"github.com/lethe-dev/lethe/connectors/sendgrid/sendgridfake"
	"github.com/lethe-dev/lethe/connectors/shopify/shopifyfake"
	"github.com/lethe-dev/lethe/connectors/stripe/stripefake"
	"github.com/lethe-dev/lethe/connectors/webhook/webhookfake"
	"github.com/lethe-dev/lethe/connectors/zendesk/zendeskfake"
	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/notify/smtptest"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// instanceYAML is one connectors[] entry for a fake vendor, its config
// block indented under it.
func instanceYAML(name, typ, extra string, v interface{ Config() string }) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n  - name: %s\n    type: %s\n%s    config:\n", name, typ, extra)
	for _, line := range strings.Split(strings.TrimRight(v.Config(), "\n"), "\n") {
		b.WriteString("      " + line + "\n")
	}
	return b.String()
}

// TestFanOutToEveryVendor: one request fans out to every connector that
// talks to a vendor, old and new, at once, against fakes that follow each
// vendor's contract — HubSpot's fake limits hard (2 requests a second,
// burst 2), Salesforce's bulk job stays unfinished for several polls —
// together with HubSpot and Mixpanel described for the http connector and
// a processor reached by email, which confirms through its signed link.
// It ends in one certificate listing every system with what it erased,
// and a bystander is left alone everywhere.
func TestFanOutToEveryVendor(t *testing.T) {
	ns := testenv.NATS(t)
	vendors := map[string]connectortest.Vendor{
		"hubspot":    hubspotfake.Start(t, hubspotfake.Options{RateLimit: 2, Burst: 2}),
		"salesforce": salesforcefake.Start(t, salesforcefake.Options{Polls: 4}),
		"mailchimp":  mailchimpfake.Start(t, mailchimpfake.Options{}),
		"sendgrid":   sendgridfake.Start(t, sendgridfake.Options{Polls: 2}),
		"iterable":   iterablefake.Start(t, iterablefake.Options{}),
		"segment":    segmentfake.Start(t, segmentfake.Options{}),
		"mixpanel":   mixpanelfake.Start(t, mixpanelfake.Options{}),
		"amplitude":  amplitudefake.Start(t, amplitudefake.Options{}),
		"s3":         s3fake.Start(t, s3fake.Options{}),
		"webhook":    webhookfake.Start(t, webhookfake.Options{}),
		"braze":      brazefake.Start(t, brazefake.Options{}),
		"klaviyo":    klaviyofake.Start(t, klaviyofake.Options{}),
		"intercom":   intercomfake.Start(t, intercomfake.Options{}),
		"stripe":     stripefake.Start(t, stripefake.Options{}),
		"shopify":    shopifyfake.Start(t, shopifyfake.Options{}),
		"zendesk":    zendeskfake.Start(t, zendeskfake.Options{}),
	}
	// Vendors that issue their own ids keep them under their own name,
	// not under the app's user ids.
	own := map[string]string{"klaviyo": "user_id_system: klaviyo", "stripe": "user_id_system: stripe"}
	names := make([]string, 0, len(vendors))
	for n := range vendors {
		names = append(names, n)
	}
	sort.Strings(names)
	var yaml strings.Builder
	for _, n := range names {
		yaml.WriteString(instanceYAML(n, n, "", vendorConfig(fakevendor.MergeYAML(vendors[n].Config(), own[n]))))
	}
	// HubSpot and Mixpanel once more, described for the http connector.
	hs := hubspotfake.Start(t, hubspotfake.Options{})
	mp := mixpanelfake.Start(t, mixpanelfake.Options{})
	mail := smtptest.Start(t, smtptest.Options{TLS: "none"})
	in := newInstance(t, ns.ClientURL(), "", "")
	yaml.WriteString(describedAndEmailed(t, "crm-described", "analytics-described", hs, mp, in.addr, mail))
	b, err := os.ReadFile(in.configPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in.configPath, append(b, yaml.String()...), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := in.serve(t)
	base := "http://" + in.addr

	person := connectors.Subject{Email: "fan.out@example.com", UserIDs: map[string]string{connectortest.UserIDSystem: "user-fan-out"}}
	bystander := connectors.Subject{Email: "stays@example.com", UserIDs: map[string]string{connectortest.UserIDSystem: "user-stays"}}
	want := map[string]int64{"crm-described": hs.Seed(person), "analytics-described": 0, "acme-support": 3}
	mp.Seed(person)
	hs.Seed(bystander)
	for n, v := range vendors {
		want[n] = v.Seed(person)
		v.Seed(bystander)
	}
	var r apiRequest
	body := `{"subject":{"email":"fan.out@example.com","user_ids":{"app":"user-fan-out"}},"jurisdiction":"gdpr"}`
	if code := call(t, "POST", base+"/v1/requests", in.agentToken, body, &r); code != 201 {
		t.Fatalf("file = %d", code)
	}
	// The processor is emailed its link and confirms through it.
	var link string
	for deadline := time.Now().Add(30 * time.Second); link == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, m := range mail.Messages() {
			p, err := m.Parse()
			if err != nil {
				t.Fatal(err)
			}
			link = confirmLinkRe.FindString(p.Text)
		}
	}
	if link == "" {
		t.Fatal("the processor was not emailed a link")
	}
	// Until the task has recorded that its email went out, the page asks
	// the processor to try again, as a person would.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, page := post(t, link, url.Values{"outcome": {"erased"}, "records": {"3"}, "evidence": {"Deleted the profile and 2 tickets"}})
		if code == http.StatusOK {
			break
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("the processor's confirmation = %d:\n%s", code, page)
		}
	}
	got := waitStatus(t, base, in.agentToken, r.ID, 120*time.Second, "completed")
	// Segment and Mixpanel confirm their deletion jobs without a count.
	uncounted := map[string]bool{"segment": true, "mixpanel": true, "analytics-described": true}
	for _, task := range got.Tasks {
		if task.Phase == "resolve" {
			continue // their fakes look the person up too
		}
		if task.Status != "erased" || task.RecordsUnknown != uncounted[task.Connector] || (!task.RecordsUnknown && task.RecordsErased != want[task.Connector]) {
			t.Errorf("%s: %s, %d records, unknown %v (want erased, %d): %s", task.Connector, task.Status, task.RecordsErased, task.RecordsUnknown, want[task.Connector], task.LastError)
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
	if hs.Count(person) != 0 || mp.Count(person) != 0 || hs.Count(bystander) != 1 {
		t.Errorf("described: HubSpot %d, Mixpanel %d left; bystander %d", hs.Count(person), mp.Count(person), hs.Count(bystander))
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
		if s.Outcome != "erased" || s.RecordsErased.Unknown != uncounted[s.Connector] || (!uncounted[s.Connector] && s.RecordsErased.N != want[s.Connector]) {
			t.Errorf("certificate: %s %s %v records", s.Connector, s.Outcome, s.RecordsErased)
		}
	}
	if len(listed) != len(want) {
		t.Errorf("certificate lists %d systems, want %d: %v", len(listed), len(want), listed)
	}
	t.Logf("HubSpot's fake refused %d of %d requests; the task still finished", vendors["hubspot"].Limited(), vendors["hubspot"].Requests())
	if strings.Contains(logs.String(), person.Email) || strings.Contains(logs.String(), "user-fan-out") {
		t.Error("the logs name the person")
	}
}

// BenchmarkVendorRate files a backlog of requests for one vendor whose
// fake allows R requests a second (burst 1, answering 429 beyond it, as
// Mailchimp does), with the connector instance configured at exactly R,
// its documented limit (4/s, and 1/s), run by one or by two `lethe serve` replicas;
// headroom=0 is the baseline without the limiter's spacing, headroom=default
// what an instance gets unless configured otherwise (rate_headroom 0.05).
// It reports the share of R achieved over the whole backlog, how many
// requests the fake refused and their share of all calls: the targets are
// a share of R of at least 0.9 with under 1% of calls refused, however
// many replicas share the instance (the limit is one budget across
// processes).
//
//	go test ./internal/app -run '^$' -bench VendorRate -benchtime 60x
func BenchmarkVendorRate(b *testing.B) {
	for _, headroom := range []string{"0", "default"} {
		for _, replicas := range []int{1, 2} {
			b.Run(fmt.Sprintf("rate=4/headroom=%s/replicas=%d", headroom, replicas), func(b *testing.B) { benchVendorRate(b, replicas, headroom, 4) })
		}
	}
	// One call a second, as Amplitude and Mixpanel allow: a call late by
	// a few milliseconds is a smaller share of the interval, one early
	// as costly.
	for _, replicas := range []int{1, 2} {
		b.Run(fmt.Sprintf("rate=1/headroom=default/replicas=%d", replicas), func(b *testing.B) { benchVendorRate(b, replicas, "default", 1) })
	}
}

func benchVendorRate(b *testing.B, replicas int, headroom string, rate float64) {
	ns := testenv.NATS(b)
	f := mailchimpfake.Start(b, mailchimpfake.Options{RateLimit: rate, Burst: 1})
	list := mailchimpfake.Audiences()[0]
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "\n  - name: newsletter\n    type: mailchimp\n    concurrency: 4\n    rate_per_second: %g\n    burst: 1\n", rate)
	if headroom != "default" {
		fmt.Fprintf(&cfg, "    rate_headroom: %s\n", headroom)
	}
	cfg.WriteString("    config:\n")
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
	calls, limited := f.Requests()-before, f.Limited()-limitedBefore
	b.ReportMetric(float64(calls-limited)/elapsed.Seconds()/rate, "share_of_R")
	b.ReportMetric(float64(limited), "429s")
	b.ReportMetric(100*float64(limited)/float64(max(calls, 1)), "429_pct")
	b.ReportMetric(float64(calls)/float64(b.N), "calls/request")
}

// TestFindThePersonInEveryVendor is the proof of identity resolution: a
// person asks on the portal by email only. The shop database maps them to
// a customer number and the app user id; Segment, Mixpanel and Amplitude
// hold them only under that app user id; HubSpot by email (and a record id
// it resolves itself); Salesforce has their Contact in the Recycle Bin,
// deleted the ordinary way before the request, and a Lead. Afterwards no
// fake holds anything of them (Salesforce's queryAll finds nothing), and
// the certificate names, for each system, the kinds of identifier it was
// searched by and where they came from.
func TestFindThePersonInEveryVendor(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	mail := smtptest.Start(t, smtptest.Options{Username: "lethe", Password: "mail-secret"})
	if _, err := tg.db.Exec(`ALTER TABLE customers ADD COLUMN customer_no text`); err != nil {
		t.Fatal(err)
	}
	hs := hubspotfake.Start(t, hubspotfake.Options{})
	sf := salesforcefake.Start(t, salesforcefake.Options{Polls: 2})
	seg := segmentfake.Start(t, segmentfake.Options{})
	mp := mixpanelfake.Start(t, mixpanelfake.Options{})
	amp := amplitudefake.Start(t, amplitudefake.Options{})
	// Only the shop supplies the app user id: the analytics vendors'
	// own look-ups are off, so the certificate's sources are certain.
	segCfg := strings.Replace(seg.Config(), "profiles:\n", "profiles:\n  resolve_by_email: false\n", 1)
	yaml := fmt.Sprintf(`
  - name: shop-db
    type: sql
    config:
      driver: postgres
      dsn: %q
      resolve:
        - {name: customers, sql: "SELECT customer_no, app_user_id FROM customers WHERE email = :email", kinds: {customer_no: user_ids.customer, app_user_id: user_ids.app}}
      statements:
        - {name: orders, sql: "UPDATE orders SET email = NULL, address = NULL WHERE email = :email"}
        - {name: customers, sql: "DELETE FROM customers WHERE email = :email"}
`, tg.url) +
		instanceYAML("hubspot", "hubspot", "", vendorConfig(hs.ConfigWith("resolve: {record_id: true}"))) +
		instanceYAML("salesforce", "salesforce", "", sf) +
		instanceYAML("segment", "segment", "", vendorConfig(segCfg)) +
		instanceYAML("mixpanel", "mixpanel", "", vendorConfig(mp.ConfigWith("resolve_by_email: false", "query_api:"))) +
		instanceYAML("amplitude", "amplitude", "", amp)
	in := newInstance(t, ns.ClientURL(), yaml, fmt.Sprintf(`
public_url: "http://%s"
portal: {enabled: true}
smtp: {host: 127.0.0.1, port: %d, tls: starttls, ca_file: %q, username: lethe, password: mail-secret, from: "Test Org Privacy <privacy@example.com>"}`,
		"", mail.Port(), mail.CAFile))
	fixPublicURL(t, in)
	logs := in.serve(t)
	base := "http://" + in.addr

	const email, other = "ida.found@example.com", "stays.put@example.com"
	appID, otherApp := "usr_7c41e09b2a55", "usr_0b2d5e11c3f8"
	person := connectors.Subject{Email: email, UserIDs: map[string]string{connectortest.UserIDSystem: appID}}
	bystander := connectors.Subject{Email: other, UserIDs: map[string]string{connectortest.UserIDSystem: otherApp}}
	for s, ids := range map[string][2]string{email: {"C-20417", appID}, other: {"C-30001", otherApp}} {
		if _, err := tg.db.Exec(`INSERT INTO customers (email, name, customer_no, app_user_id) VALUES ($1, 'Ida', $2, $3)`, s, ids[0], ids[1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []connectortest.Vendor{hs, seg, mp, amp} {
		v.Seed(person)
		v.Seed(bystander)
	}
	sf.SeedRecoverable(connectors.Subject{Email: email}) // deleted by hand before the request: in the Recycle Bin
	sf.Seed(bystander)
	if sf.QueryAllCount(email) == 0 {
		t.Fatal("the Salesforce fake does not hold the recycled records")
	}

	id, _, _ := portalRequest(t, base, smtpInbox(mail), email, nil)
	got := waitStatus(t, base, in.agentToken, id, 90*time.Second, "completed", "needs_attention")
	if got.Status != "completed" {
		t.Fatalf("request %s: %+v", got.Status, got.Tasks)
	}
	for name, v := range map[string]connectortest.Vendor{"hubspot": hs, "salesforce": sf, "segment": seg, "mixpanel": mp, "amplitude": amp} {
		if n := v.Count(person); n != 0 {
			t.Errorf("%s still holds %d records of the person", name, n)
		}
		if v.Count(bystander) == 0 {
			t.Errorf("%s lost the bystander", name)
		}
	}
	if n := sf.QueryAllCount(email); n != 0 {
		t.Errorf("Salesforce queryAll still finds %d records: the Recycle Bin was not emptied", n)
	}
	if rows, _ := tg.remaining(t, email); rows != 0 {
		t.Errorf("%d shop rows left", rows)
	}

	v := verified(t, base, in, id)
	lines := systems(v)
	fromShop := erasure.Source{Kind: "user_ids.app", From: "shop-db"}
	for _, name := range []string{"segment", "mixpanel", "amplitude"} {
		if s := lines[name]; s.Outcome != "erased" || len(s.SearchedBy) != 1 || s.SearchedBy[0] != fromShop {
			t.Errorf("%s on the certificate: %s, searched by %v", name, s.Outcome, s.SearchedBy)
		}
	}
	if r := lines["segment"].RecordsErased; !r.Unknown {
		t.Errorf("segment shows %v records: it only confirmed a job", r)
	}
	if s := lines["salesforce"]; s.Outcome != "erased" || s.RecordsErased.N != 2 || s.SearchedBy[0] != (erasure.Source{Kind: "email", From: "request"}) {
		t.Errorf("salesforce on the certificate: %+v", s)
	}
	if s := lines["hubspot"]; !slices.Contains(s.SearchedBy, erasure.Source{Kind: "user_ids.hubspot", From: "hubspot"}) {
		t.Errorf("hubspot searched by %v, want its own resolved record id among them", s.SearchedBy)
	}
	want := []erasure.Source{{Kind: "email", From: "request"}, {Kind: "user_ids.app", From: "shop-db"},
		{Kind: "user_ids.customer", From: "shop-db"}, {Kind: "user_ids.hubspot", From: "hubspot"}}
	if fmt.Sprint(v.Payload.Identifiers) != fmt.Sprint(want) {
		t.Errorf("certificate identifiers %v, want %v", v.Payload.Identifiers, want)
	}
	if len(v.Payload.Resolution) != 2 {
		t.Errorf("certificate look-ups: %+v", v.Payload.Resolution)
	}
	doc := getCertificate(t, base, in.agentToken, id)
	logText := logs.String()
	for _, secret := range []string{email, appID, "C-20417"} {
		if strings.Contains(string(doc), secret) {
			t.Errorf("the certificate holds %q", secret)
		}
		if strings.Contains(logText, secret) {
			t.Errorf("the logs hold %q", secret)
		}
	}
	for _, id := range hs.RecordIDs(email) {
		t.Errorf("HubSpot still has record %s", id)
	}
}

// vendorConfig wraps a config block so instanceYAML can indent it.
type vendorConfig string

func (c vendorConfig) Config() string { return string(c) }
