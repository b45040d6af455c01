package s3_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
	_ "github.com/lethe-dev/lethe/connectors/s3"
	"github.com/lethe-dev/lethe/connectors/s3/s3fake"
)

// instance is the connector instance name, and so the default user_id
// system where a config leaves user_id_system out (the fake's sets app).
const instance = "shop-files"

const bucket = s3fake.DefaultBucket

// newFake is a fake store whose bucket has versioning "", "Enabled" or
// "Suspended".
func newFake(t testing.TB, versioning string) *s3fake.Fake {
	return newFakeWith(t, versioning, s3fake.Options{})
}

func newFakeWith(t testing.TB, versioning string, opt s3fake.Options) *s3fake.Fake {
	f := s3fake.Start(t, opt)
	f.SetVersioning(bucket, versioning)
	return f
}

// connector is an instance against f with the fake's templates; lines set
// top-level keys of its config.
func connector(t testing.TB, f *s3fake.Fake, lines ...string) connectors.Connector {
	t.Helper()
	return connectortest.Build(t, "s3", instance, f.ConfigWith(lines...))
}

// seeded is a fake whose versioned bucket holds the four objects of
// VendorSubject(1).
func seeded(t testing.TB) (*s3fake.Fake, connectors.Subject) {
	f := newFake(t, "Enabled")
	sub := connectortest.VendorSubject(1)
	f.Seed(sub)
	return f, sub
}

func keysOf(s connectors.Subject) (keys, prefixes []string) {
	return []string{"exports/" + s.Email + ".csv", "avatars/" + s.UserIDs[connectortest.UserIDSystem] + ".png"}, []string{"uploads/" + s.Email + "/"}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, versioning := range []string{"Enabled", "", "Suspended"} {
		name := "versioning=" + versioning
		if versioning == "" {
			name = "unversioned"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := s3fake.Start(t, s3fake.Options{})
			f.SetVersioning(s3fake.DefaultBucket, versioning)
			h := connectortest.VendorHarness("s3", f)
			h.Hostile = []connectors.Subject{
				{Email: "o'brien'--@example.com"},
				{Email: "%@example.com"},
				{Email: "*@example.com"},
				{Email: "subject60"},                  // a prefix of a bystander's email
				connectortest.VendorUserID("user-60"), // a prefix of a bystander's id
				{Email: "../uploads/subject600@example.com"},
				{Email: "subject600@example.com/../x"},
				{Email: ".."},
				connectortest.VendorUserID("user-600/../user-601"),
				connectortest.VendorUserID(`user-600\..\user-601`),
				{Email: "subject600@example.com\n"},
				{}, // no identifiers at all: every template is skipped
			}
			h.Faulty = faulty
			if versioning == "" {
				// s3fake seeds old versions and delete markers; a bucket that
				// was never versioned keeps neither.
				h.SeedRecoverable = nil
				h.NoRecoverableState = "a bucket that was never versioned keeps no old versions or delete markers: a deleted object is gone"
			}
			connectortest.Run(t, h)
		})
	}
}

// faulty returns a connector to a fake of its own producing fault.
func faulty(t *testing.T, fault connectortest.Fault) connectors.Connector {
	bad := newFake(t, "Enabled")
	switch fault {
	case connectortest.FaultUnavailable:
		bad.Always(s3fake.Fault(http.StatusInternalServerError, "InternalError"))
	case connectortest.FaultRateLimited:
		bad.Always(s3fake.SlowDown(""))
	case connectortest.FaultUnauthorized:
		return connector(t, bad, "access_key_id: AKIDREVOKED")
	case connectortest.FaultMisconfigured:
		return connector(t, bad, "bucket: no-such-bucket")
	}
	return connector(t, bad)
}

// leaks fails the test when text carries an identifier of sub, a key or
// the secret.
func leaks(t *testing.T, what, text string, sub connectors.Subject) {
	t.Helper()
	for _, v := range []string{sub.Email, sub.UserIDs[connectortest.UserIDSystem], s3fake.SecretKey, "exports/subject", "uploads/subject"} {
		for _, form := range []string{v, url.QueryEscape(v), url.PathEscape(v)} {
			if v != "" && strings.Contains(strings.ToLower(text), strings.ToLower(form)) {
				t.Errorf("%s carries %q: %s", what, form, text)
			}
		}
	}
}

// TestVendorCases: each request of an erasure meets each fault the way S3
// answers (throttling is 503 SlowDown, refused keys 403).
func TestVendorCases(t *testing.T) {
	t.Parallel()
	connectortest.RunVendorCases(t, connectortest.VendorCases{
		Type:        "s3",
		Start:       connectortest.StartFake(s3fake.Start),
		Unavailable: s3fake.SlowDown(""),
		TooMany:     s3fake.SlowDown(""), MinRetryAfter: time.Millisecond,
		Refused: s3fake.Refused, Credential: "access_key_id", Secrets: []string{s3fake.SecretKey},
		// S3 answers XML: the AWS SDK reads a 200 with a JSON body as an
		// empty answer (malformed XML is TestMalformedResponses).
		Unread: map[string]string{"malformed": "the SDK reads a JSON body as an empty XML answer"},
	})
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	const creds = "access_key_id: AKID\nsecret_access_key: " + s3fake.SecretKey + "\n"
	const base = "bucket: b1\nregion: r\n" + creds
	// Want: "" when valid, else text the error must contain.
	connectortest.RunConfigCases(t, "s3", nil, []string{s3fake.SecretKey}, connectortest.ConfigCases{
		{"valid aws", "bucket: b1\nregion: eu-west-1\n" + creds + "keys: [\"exports/{email}.csv\"]\n", ""},
		{"valid minio", "bucket: b1\nbase_url: http://minio:9000\nuse_path_style: true\n" + creds + "prefixes: [\"u/{user_id}/\"]\nversioning: unversioned\n", ""},
		{"valid secrets from env", "bucket: b1\nregion: eu-west-1\naccess_key_id: {env: X}\nsecret_access_key: {file: /run/s}\nkeys: [\"{phone}.txt\"]\n", "access_key_id: environment variable X"},
		{"no bucket", "region: eu-west-1\n" + creds + "keys: [\"{email}\"]\n", "bucket: required"},
		{"bucket is a URL", "bucket: s3://b1/x\nregion: eu-west-1\n" + creds + "keys: [\"{email}\"]\n", "bucket: must be a bucket name"},
		{"no region for aws", "bucket: b1\n" + creds + "keys: [\"{email}\"]\n", "region: required"},
		{"bad base_url", "bucket: b1\nbase_url: minio:9000\n" + creds + "keys: [\"{email}\"]\n", "base_url: must be an http(s) URL"},
		{"credentials in base_url", "bucket: b1\nbase_url: https://u:p@minio\n" + creds + "keys: [\"{email}\"]\n", "base_url: must not carry credentials"},
		{"no access key", "bucket: b1\nregion: r\nsecret_access_key: x\nkeys: [\"{email}\"]\n", "access_key_id: required"},
		{"no secret", "bucket: b1\nregion: r\naccess_key_id: x\nkeys: [\"{email}\"]\n", "secret_access_key: required"},
		{"bad versioning", base + "keys: [\"{email}\"]\nversioning: maybe\n", "versioning: \"maybe\""},
		{"no templates", base, "keys, prefixes: at least one"},
		{"key without placeholder", base + "keys: [\"exports/all.csv\"]\n", "keys[0]: \"exports/all.csv\" has no placeholder"},
		{"prefix without placeholder", base + "prefixes: [\"uploads/\"]\n", "prefixes[0]: \"uploads/\" has no placeholder"},
		{"unknown placeholder", base + "keys: [\"{name}.csv\"]\n", "keys[0]: \"{name}.csv\": unknown placeholder {name}"},
		{"unclosed brace", base + "keys: [\"{email.csv\"]\n", "unclosed"},
		{"stray brace", base + "keys: [\"{email}}.csv\"]\n", "stray"},
		{"adjacent placeholders", base + "keys: [\"{email}{phone}.csv\"]\n", "touch"},
		{"key ends in slash", base + "keys: [\"uploads/{email}/\"]\n", "keys[0]: \"uploads/{email}/\" ends with \"/\""},
		{"leading slash", base + "keys: [\"/x/{email}\"]\n", "starts with \"/\""},
		{"dot dot segment", base + "keys: [\"a/../{email}\"]\n", "\"..\" segment"},
		{"prefix could widen", base + "prefixes: [\"uploads/{email}\"]\n", "prefixes[0]: \"uploads/{email}\": a prefix needs a \"/\" right after {email}"},
		{"prefix could widen mid-way", base + "prefixes: [\"uploads/{user_id}-{email}/\"]\n", "right after {user_id}"},
		{"duplicate", base + "keys: [\"{email}\", \"{email}\"]\n", "keys[1]: \"{email}\" is listed twice"},
		{"unknown field", base + "keys: [\"{email}\"]\nendpoint: http://x\n", "endpoint"},
	})
}

func TestCredentialsFromEnvironment(t *testing.T) {
	t.Parallel()
	f, sub := seeded(t)
	y := strings.NewReplacer("access_key_id: "+s3fake.DefaultAccessKey, "access_key_id: {env: SHOP_S3_KEY}", "secret_access_key: "+s3fake.SecretKey, "secret_access_key: {env: SHOP_S3_SECRET}").Replace(f.Config())
	env := map[string]string{"SHOP_S3_KEY": s3fake.DefaultAccessKey, "SHOP_S3_SECRET": s3fake.SecretKey}
	c := connectortest.BuildWith(t, "s3", instance, y, connectors.Deps{Getenv: func(k string) string { return env[k] }})
	out, err := c.Erase(connectortest.Ctx(t), sub)
	if err != nil || out.Records != 4 {
		t.Fatalf("Erase = %+v, %v", out, err)
	}
}

func TestVersionedBucketIsErasedForReal(t *testing.T) {
	t.Parallel()
	f := newFake(t, "")
	sub := connectortest.VendorSubject(1)
	key := "exports/" + sub.Email + ".csv"
	f.Put(bucket, key) // written before versioning: VersionId "null"
	f.SetVersioning(bucket, "Enabled")
	f.Put(bucket, key)
	f.Put(bucket, key)
	f.Hide(bucket, key)                              // a plain delete: data kept under a marker
	f.Hide(bucket, "uploads/"+sub.Email+"/gone.pdf") // a marker alone still names the person
	f.Put(bucket, "uploads/"+sub.Email+"/a.pdf")
	f.Put(bucket, "uploads/"+sub.Email+"/b.pdf")
	f.Put(bucket, "exports/"+sub.Email+".csv.bak") // another key the key template must not reach
	c := connector(t, f)

	out, err := c.Erase(connectortest.Ctx(t), sub)
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != connectors.StatusErased || out.Records != 4 {
		t.Errorf("Erase = %q with %d records, want erased with 4 objects", out.Status, out.Records)
	}
	keys, prefixes := keysOf(sub)
	if n, v, m := f.CountKeys(bucket, keys, prefixes); n+v+m != 0 {
		t.Errorf("left %d objects, %d versions, %d delete markers", n, v, m)
	}
	if n, _, _ := f.CountKeys(bucket, []string{key + ".bak"}, nil); n != 1 {
		t.Error("the key template erased a longer key that merely starts with it")
	}
	ev := connectortest.EvidenceText(out.Evidence)
	for _, want := range []string{
		"bucket=" + bucket + " (versioning: Enabled)",
		"key=exports/{email}.csv: 1 object (3 versions, 1 delete marker)",
		"key=avatars/{user_id}.png: 0 objects (0 versions, 0 delete markers)",
		"prefix=uploads/{email}/: 3 objects (2 versions, 1 delete marker)",
	} {
		if !strings.Contains(ev, want) {
			t.Errorf("evidence lacks %q:\n%s", want, ev)
		}
	}
	leaks(t, "evidence", ev, sub)

	v, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), sub)
	if err != nil || v.Remaining != 0 {
		t.Errorf("Verify = %d remaining, %v", v.Remaining, err)
	}
	if ev := connectortest.EvidenceText(v.Evidence); !strings.Contains(ev, "exports/{email}.csv: 0 objects remaining (0 versions, 0 delete markers)") {
		t.Errorf("Verify evidence: %s", ev)
	}
	// Every deletion named a version: none can have left a marker.
	for _, call := range f.Calls() {
		if call.Method == http.MethodPost {
			for _, o := range parseDelete(t, call.Body).Objects {
				if o.VersionId == "" {
					t.Errorf("DeleteObjects without a VersionId in a versioned bucket")
				}
			}
		}
	}
}

func TestVerifySeesHiddenVersions(t *testing.T) {
	t.Parallel()
	f := newFake(t, "Enabled")
	sub := connectortest.VendorSubject(2)
	key := "exports/" + sub.Email + ".csv"
	f.Put(bucket, key)
	f.Hide(bucket, key)
	v, err := connector(t, f).(connectors.Verifier).Verify(connectortest.Ctx(t), sub)
	if err != nil {
		t.Fatal(err)
	}
	if v.Remaining != 1 {
		t.Errorf("Verify = %d remaining; an object behind a delete marker is still there", v.Remaining)
	}
	ev := connectortest.EvidenceText(v.Evidence)
	if !strings.Contains(ev, "exports/{email}.csv: 1 object remaining (1 version, 1 delete marker)") {
		t.Errorf("evidence: %s", ev)
	}
	leaks(t, "evidence", ev, sub)
}

func TestBatchesNeverExceedAThousand(t *testing.T) {
	t.Parallel()
	t.Run("1500 versions of one key", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, "Enabled")
		f.SetPageSize(300) // S3 may return short pages: batches still fill up to 1,000
		sub := connectortest.VendorSubject(3)
		for range 1500 {
			f.Put(bucket, "exports/"+sub.Email+".csv")
		}
		out, err := connector(t, f).Erase(connectortest.Ctx(t), sub)
		if err != nil {
			t.Fatal(err)
		}
		if out.Records != 1 || !strings.Contains(connectortest.EvidenceText(out.Evidence), "1 object (1500 versions, 0 delete markers)") {
			t.Errorf("Erase = %d records, evidence %s", out.Records, connectortest.EvidenceText(out.Evidence))
		}
		checkBatches(t, f, 1500)
		if b := f.DeleteBatches(); len(b) != 2 {
			t.Errorf("DeleteObjects batches %v; want 1,000 then 500", b)
		}
	})
	t.Run("1500 objects under a prefix", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, "")
		sub := connectortest.VendorSubject(4)
		for i := range 1500 {
			f.Put(bucket, fmt.Sprintf("uploads/%s/%04d.jpg", sub.Email, i))
		}
		out, err := connector(t, f).Erase(connectortest.Ctx(t), sub)
		if err != nil || out.Records != 1500 {
			t.Fatalf("Erase = %d records, %v", out.Records, err)
		}
		checkBatches(t, f, 1500)
	})
}

func checkBatches(t *testing.T, f *s3fake.Fake, total int) {
	t.Helper()
	batches := f.DeleteBatches()
	sum := 0
	for _, n := range batches {
		if n > 1000 {
			t.Errorf("a DeleteObjects request carried %d keys; S3 takes at most 1,000", n)
		}
		sum += n
	}
	if sum != total || len(batches) < 2 {
		t.Errorf("DeleteObjects batches %v, want %d entries in at least 2 requests", batches, total)
	}
	if n, _, _ := f.CountKeys(bucket, nil, []string{""}); n != 0 {
		t.Errorf("%d objects left", n)
	}
}

func parseDelete(t *testing.T, body []byte) s3fake.DeleteRequest {
	t.Helper()
	d, err := s3fake.ParseDelete(body)
	if err != nil {
		t.Fatalf("DeleteObjects body is not a <Delete> document: %v\n%s", err, body)
	}
	return d
}

// TestRequestsFollowTheS3API checks what the store receives: path-style
// bucket URLs, the documented queries, SigV4 credentials, and DeleteObjects
// bodies with Quiet, at most 1,000 objects and a valid Content-MD5.
func TestRequestsFollowTheS3API(t *testing.T) {
	t.Parallel()
	for _, versioning := range []string{"Enabled", ""} {
		t.Run("versioning="+versioning, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, versioning)
			sub := connectortest.VendorSubject(5)
			f.Seed(sub)
			if _, err := connector(t, f).Erase(connectortest.Ctx(t), sub); err != nil {
				t.Fatal(err)
			}
			var ops []string
			for _, call := range f.Calls() {
				q, _ := url.ParseQuery(call.Query)
				if strings.Trim(call.Path, "/") != bucket {
					t.Errorf("%s %s: want path-style /%s", call.Method, call.Path, bucket)
				}
				auth := call.Header.Get("Authorization")
				if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential="+s3fake.DefaultAccessKey+"/") || !strings.Contains(auth, "/eu-west-1/s3/aws4_request") {
					t.Errorf("Authorization = %q, want SigV4 for %s in eu-west-1", auth, s3fake.DefaultAccessKey)
				}
				if strings.Contains(auth, s3fake.SecretKey) {
					t.Error("the secret key travelled in the Authorization header")
				}
				if call.Header.Get("X-Amz-Date") == "" || call.Header.Get("X-Amz-Content-Sha256") == "" {
					t.Errorf("%s lacks X-Amz-Date or X-Amz-Content-Sha256", call.Method)
				}
				switch {
				case call.Method == http.MethodGet && q.Has("versioning"):
					ops = append(ops, "GetBucketVersioning")
				case call.Method == http.MethodGet && q.Has("versions"):
					ops = append(ops, "ListObjectVersions "+q.Get("prefix"))
				case call.Method == http.MethodGet && q.Get("list-type") == "2":
					ops = append(ops, "ListObjectsV2 "+q.Get("prefix"))
				case call.Method == http.MethodPost && q.Has("delete"):
					ops = append(ops, "DeleteObjects")
					if got := call.Header.Get("Content-MD5"); got != s3fake.ContentMD5(call.Body) {
						t.Errorf("Content-MD5 = %q, want the body's", got)
					}
					d := parseDelete(t, call.Body)
					if !d.Quiet || len(d.Objects) == 0 || len(d.Objects) > 1000 {
						t.Errorf("DeleteObjects: quiet %v with %d objects", d.Quiet, len(d.Objects))
					}
					for _, o := range d.Objects {
						if (o.VersionId != "") != (versioning != "") {
							t.Errorf("DeleteObjects object has VersionId %q in a bucket with versioning %q", o.VersionId, versioning)
						}
					}
				default:
					t.Errorf("unexpected call %s %s?%s", call.Method, call.Path, call.Query)
				}
			}
			list := "ListObjectVersions "
			if versioning == "" {
				list = "ListObjectsV2 "
			}
			want := []string{
				"GetBucketVersioning",
				list + "exports/" + sub.Email + ".csv", "DeleteObjects",
				list + "avatars/" + sub.UserIDs[connectortest.UserIDSystem] + ".png", "DeleteObjects",
				list + "uploads/" + sub.Email + "/", "DeleteObjects",
			}
			if !slices.Equal(ops, want) {
				t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(ops, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestIdentifierRefusedBeforeAnyCall(t *testing.T) {
	t.Parallel()
	f := newFake(t, "Enabled")
	c := connector(t, f)
	for _, sub := range []connectors.Subject{
		{Email: "a/b@example.com"},
		{Email: "a..b@example.com"},
		{Email: "a@example.com", UserIDs: map[string]string{connectortest.UserIDSystem: "../u1"}},
		{Email: "a\x00@example.com"},
	} {
		connectortest.RefusedUnsent(t, c, sub, "", f.Requests)
	}
}

// TestErrorsAreClassified covers the store's answers one by one. The
// connector is set to a versioned bucket so its first call is the listing,
// whose URL holds the subject's email: no message may quote it.
func TestErrorsAreClassified(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		fault      fakevendor.Fault
		permanent  bool
		retryAfter time.Duration
		want       string
	}{
		{"500 InternalError", s3fake.Fault(500, "InternalError"), false, 0, "500 InternalError"},
		{"503 SlowDown", s3fake.SlowDown(""), false, 2 * time.Second, "503 SlowDown: the store asks to slow down"},
		{"503 SlowDown with Retry-After", s3fake.SlowDown("7"), false, 7 * time.Second, "503 SlowDown"},
		{"429 from an S3-compatible store", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "3")
			s3fake.WriteError(w, http.StatusTooManyRequests, "TooManyRequests", "slow down")
		}, false, 3 * time.Second, "429 TooManyRequests"},
		{"503 without a body", fakevendor.Status(503), false, 2 * time.Second, "503"},
		{"403 AccessDenied", s3fake.Fault(403, "AccessDenied"), true, 0, "403 AccessDenied: the credentials were refused"},
		{"403 SignatureDoesNotMatch", s3fake.Fault(403, "SignatureDoesNotMatch"), true, 0, "credentials were refused"},
		{"403 InvalidAccessKeyId", s3fake.Fault(403, "InvalidAccessKeyId"), true, 0, "credentials were refused"},
		{"404 NoSuchBucket", s3fake.Fault(404, "NoSuchBucket"), true, 0, "the bucket does not exist"},
		{"301 PermanentRedirect", s3fake.Fault(301, "PermanentRedirect"), true, 0, "another region"},
		{"400 InvalidArgument", s3fake.Fault(400, "InvalidArgument"), true, 0, "refused the request"},
		{"malformed body", s3fake.MalformedXML, false, 0, "unreadable response"},
		{"hostile error code", s3fake.Fault(400, "subject9@example.com"), true, 0, "unrecognised error code"},
	}
	sub := connectortest.VendorSubject(9)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, "Enabled")
			f.Seed(sub)
			f.Always(tc.fault)
			_, err := connector(t, f, "versioning: versioned").Erase(connectortest.Ctx(t), sub)
			if err == nil {
				t.Fatal("Erase succeeded")
			}
			perm, after := connectors.Classify(err)
			if perm != tc.permanent || after != tc.retryAfter {
				t.Errorf("permanent %v, retry after %v; want %v, %v: %v", perm, after, tc.permanent, tc.retryAfter, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
			leaks(t, "error", err.Error(), sub)
			if n := f.Count(sub); n != 4 {
				t.Errorf("a failed erase removed data: %d of 4 objects left", n)
			}
		})
	}
}

func TestVersioningNotImplemented(t *testing.T) {
	t.Parallel()
	f := newFake(t, "Enabled")
	f.Always(s3fake.Fault(501, "NotImplemented"))
	_, err := connector(t, f).Erase(connectortest.Ctx(t), connectortest.VendorSubject(1))
	if perm, _ := connectors.Classify(err); err == nil || !perm || !strings.Contains(err.Error(), "set versioning: versioned or unversioned") {
		t.Errorf("Erase = %v; want a permanent error pointing at the versioning setting", err)
	}
}

func TestTimeoutIsRetryable(t *testing.T) {
	t.Parallel()
	f := newFake(t, "Enabled")
	sub := connectortest.VendorSubject(1)
	f.Always(fakevendor.Hang(5 * time.Second))
	c := connectortest.BuildWith(t, "s3", instance, f.ConfigWith("versioning: versioned"), connectors.Deps{HTTPClient: &http.Client{Timeout: 200 * time.Millisecond}})
	start := time.Now()
	_, err := c.Erase(connectortest.Ctx(t), sub)
	if perm, _ := connectors.Classify(err); err == nil || perm || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("Erase = %v; want a retryable timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Erase took %v; the SDK must not retry on its own", d)
	}
	leaks(t, "error", err.Error(), sub)
	if strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("error quotes the URL: %v", err)
	}
}

// eraseWithRetries plays the runtime: retry retryable errors until the
// erase succeeds, pausing a tenth of what was asked for (at least 10ms).
func eraseWithRetries(t *testing.T, c connectors.Connector, sub connectors.Subject, attempts int) (connectors.Outcome, int) {
	t.Helper()
	for i := range attempts {
		out, err := c.Erase(connectortest.Ctx(t), sub)
		if err == nil {
			return out, i
		}
		perm, after := connectors.Classify(err)
		if perm {
			t.Fatalf("attempt %d: permanent: %v", i+1, err)
		}
		if strings.Contains(err.Error(), "SlowDown") && after <= 0 {
			t.Errorf("SlowDown without a pause: %v", err)
		}
		time.Sleep(max(after/10, 10*time.Millisecond))
	}
	t.Fatalf("no success after %d attempts", attempts)
	return connectors.Outcome{}, 0
}

func TestSlowDownStormThenSuccess(t *testing.T) {
	t.Parallel()
	f, sub := seeded(t)
	f.Inject(6, s3fake.SlowDown(""))
	out, failures := eraseWithRetries(t, connector(t, f), sub, 20)
	if failures != 6 || out.Status != connectors.StatusErased || out.Records != 4 {
		t.Errorf("after %d failures: %q with %d records; want 6 failures then 4 records", failures, out.Status, out.Records)
	}
	if n := f.Count(sub); n != 0 {
		t.Errorf("%d objects left", n)
	}
}

func TestRateLimitedMidErase(t *testing.T) {
	t.Parallel()
	// Throttled partway through the erase (it takes 7 calls); each retry
	// picks up where the last stopped, after a pause of 200ms.
	f := newFakeWith(t, "Enabled", s3fake.Options{RateLimit: 40, Burst: 5})
	sub := connectortest.VendorSubject(1)
	f.Seed(sub)
	_, failures := eraseWithRetries(t, connector(t, f), sub, 100)
	if f.Limited() == 0 || failures == 0 {
		t.Errorf("the rate limit was never met (%d refusals, %d failures); the test proves nothing", f.Limited(), failures)
	}
	if n := f.Count(sub); n != 0 {
		t.Errorf("%d objects left", n)
	}
}

func TestMalformedResponses(t *testing.T) {
	t.Parallel()
	t.Run("listing", func(t *testing.T) {
		t.Parallel()
		f, sub := seeded(t)
		f.Inject(1, s3fake.MalformedXML)
		out, failures := eraseWithRetries(t, connector(t, f, "versioning: versioned"), sub, 5)
		if failures != 1 || out.Records != 4 {
			t.Errorf("%d failures, %d records; want 1 and 4", failures, out.Records)
		}
	})
	t.Run("delete result", func(t *testing.T) {
		t.Parallel()
		f, sub := seeded(t)
		// The listing goes through; the delete happens but its answer is garbage.
		f.Inject(1, f.PassThrough())
		f.Inject(1, func(w http.ResponseWriter, r *http.Request) {
			f.PassThrough()(discard{}, r)
			w.Header().Set("Content-Type", "application/xml")
			_, _ = w.Write([]byte("<DeleteResult><Error><Key>"))
		})
		c := connector(t, f, "versioning: versioned")
		_, err := c.Erase(connectortest.Ctx(t), sub)
		if perm, _ := connectors.Classify(err); err == nil || perm {
			t.Fatalf("Erase = %v; want retryable", err)
		}
		if _, failures := eraseWithRetries(t, c, sub, 5); failures != 0 {
			t.Errorf("retry failed %d times", failures)
		}
		if n := f.Count(sub); n != 0 {
			t.Errorf("%d objects left", n)
		}
	})
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

func TestPerKeyDeleteErrors(t *testing.T) {
	t.Parallel()
	t.Run("InternalError is retried", func(t *testing.T) {
		t.Parallel()
		f, sub := seeded(t)
		failed := false
		f.FailDeletes(func(key string) (string, string) {
			if strings.HasPrefix(key, "uploads/") && !failed {
				failed = true
				return "InternalError", "We encountered an internal error. Please try again."
			}
			return "", ""
		})
		c := connector(t, f)
		_, err := c.Erase(connectortest.Ctx(t), sub)
		if perm, _ := connectors.Classify(err); err == nil || perm || !strings.Contains(err.Error(), "1 deletion failed (InternalError)") {
			t.Fatalf("Erase = %v; want a retryable per-key failure", err)
		}
		leaks(t, "error", err.Error(), sub)
		if _, failures := eraseWithRetries(t, c, sub, 3); failures != 0 {
			t.Errorf("retry failed %d times", failures)
		}
		if n := f.Count(sub); n != 0 {
			t.Errorf("%d objects left", n)
		}
	})
	t.Run("AccessDenied is permanent", func(t *testing.T) {
		t.Parallel()
		f, sub := seeded(t)
		f.FailDeletes(func(string) (string, string) { return "AccessDenied", "Access Denied" })
		_, err := connector(t, f).Erase(connectortest.Ctx(t), sub)
		if perm, _ := connectors.Classify(err); err == nil || !perm || !strings.Contains(err.Error(), "s3:DeleteObjectVersion") {
			t.Errorf("Erase = %v; want a permanent error naming the permission", err)
		}
		leaks(t, "error", err.Error(), sub)
	})
	t.Run("Object Lock keeps a version", func(t *testing.T) {
		t.Parallel()
		f, sub := seeded(t)
		f.Lock(bucket, "exports/"+sub.Email+".csv", "compliance")
		_, err := connector(t, f).Erase(connectortest.Ctx(t), sub)
		if perm, _ := connectors.Classify(err); err == nil || !perm || !strings.Contains(err.Error(), "1 version under [exports/{email}.csv] protected by Object Lock") {
			t.Fatalf("Erase = %v; want a permanent Object Lock error", err)
		}
		leaks(t, "error", err.Error(), sub)
		keys, prefixes := keysOf(sub)
		if n, v, m := f.CountKeys(bucket, keys, prefixes); n != 1 || v != 1 || m != 0 {
			t.Errorf("left %d objects, %d versions, %d markers; want only the locked version", n, v, m)
		}
	})
	t.Run("governance retention bypassed when configured", func(t *testing.T) {
		t.Parallel()
		f, sub := seeded(t)
		f.Lock(bucket, "exports/"+sub.Email+".csv", "governance")
		if _, err := connector(t, f).Erase(connectortest.Ctx(t), sub); err == nil {
			t.Fatal("governance retention was bypassed without bypass_governance_retention")
		}
		out, err := connector(t, f, "bypass_governance_retention: true").Erase(connectortest.Ctx(t), sub)
		if err != nil || out.Records != 1 {
			t.Fatalf("Erase with bypass = %d records, %v; want the locked object", out.Records, err)
		}
		var last fakevendor.Call
		for _, c := range f.Calls() {
			if c.Method == http.MethodPost {
				last = c
			}
		}
		if last.Header.Get("X-Amz-Bypass-Governance-Retention") != "true" {
			t.Error("the last DeleteObjects did not send x-amz-bypass-governance-retention")
		}
	})
}

func TestPlan(t *testing.T) {
	t.Parallel()
	// Read without building: the credentials' variables are unset and
	// never read.
	const base = "bucket: shop\nregion: eu-west-1\naccess_key_id: {env: S3_NEVER_READ}\nsecret_access_key: {env: S3_NEVER_READ}\n"
	// Each kind is its own requirement (a space, not "|"): all are needed.
	connectortest.RunPlanCases(t, "s3", connectortest.PlanCases{
		{Name: "email and user id", Instance: instance, YAML: base + `keys: ["exports/{email}.csv", "avatars/{user_id}.png"]` + "\nprefixes: [\"uploads/{email}/\"]\n",
			Keys: "[email user_ids.shop-files]", Uses: "[email user_ids.shop-files]"},
		{Name: "user_id_system", Instance: instance, YAML: base + "user_id_system: app\nkeys: [\"avatars/{user_id}.png\"]\n",
			Keys: "[user_ids.app]", Uses: "[user_ids.app]"},
		{Name: "phone in a prefix", Instance: instance, YAML: base + "prefixes: [\"calls/{phone}/\"]\n",
			Keys: "[phone]", Uses: "[phone]"},
		{Name: "two in one template", Instance: instance, YAML: base + "keys: [\"{user_id}/{phone}.txt\"]\n",
			Keys: "[phone user_ids.shop-files]", Uses: "[phone user_ids.shop-files]"},
	})
}

// The plan makes the runtime wait for every identifier the templates
// name; a subject with none of them (the instance's keys were changed) is
// refused before any call: nothing was searched.
func TestNothingSearchableIsRefused(t *testing.T) {
	t.Parallel()
	f := newFake(t, "Enabled")
	c := connector(t, f, "user_id_system:") // the default: the instance's name
	connectortest.RefusedUnsent(t, c, connectors.Subject{Phone: "+447700900123"}, "", f.Requests)
	// One identifier missing: its templates are skipped, the others searched.
	f.Seed(connectortest.VendorSubject(3))
	out, err := c.Erase(connectortest.Ctx(t), connectors.Subject{Email: connectortest.VendorSubject(3).Email})
	if err != nil || out.Status != connectors.StatusErased || out.Records != 3 {
		t.Fatalf("Erase by email alone = %q %d, %v; want the 3 objects named by email", out.Status, out.Records, err)
	}
	if ev := connectortest.EvidenceText(out.Evidence); !strings.Contains(ev, "avatars/{user_id}.png: skipped, the subject has no user_id for shop-files") {
		t.Errorf("evidence = %s", ev)
	}
}

// An object deleted by a plain DELETE in a versioned bucket is restorable:
// its data is a noncurrent version behind a delete marker. Verify counts
// it, Erase purges the version and the marker.
func TestDeletedObjectsAreRestorableUntilPurged(t *testing.T) {
	t.Parallel()
	for _, versioning := range []string{"Enabled", "Suspended"} {
		t.Run(versioning, func(t *testing.T) {
			t.Parallel()
			f := s3fake.Start(t, s3fake.Options{})
			f.SetVersioning(s3fake.DefaultBucket, versioning)
			sub := connectortest.VendorSubject(5)
			if n := f.SeedRecoverable(sub); n != 2 {
				t.Fatalf("SeedRecoverable = %d, want 2", n)
			}
			key := "exports/" + sub.Email + ".csv"
			if objects, versions, markers := f.CountKeys(s3fake.DefaultBucket, []string{key}, nil); objects != 1 || versions != 1 || markers != 1 {
				t.Fatalf("seeded %d objects, %d versions, %d markers; want one version behind one marker", objects, versions, markers)
			}
			c := connectortest.Build(t, "s3", "s3", f.Config())
			v, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), sub)
			if err != nil || v.Remaining != 2 {
				t.Fatalf("Verify = %d, %v; deleted but restorable objects remain", v.Remaining, err)
			}
			out, err := c.Erase(connectortest.Ctx(t), sub)
			if err != nil || out.Status != connectors.StatusErased || out.Records != 2 {
				t.Fatalf("Erase = %q %d, %v; want both objects erased", out.Status, out.Records, err)
			}
			if ev := connectortest.EvidenceText(out.Evidence); !strings.Contains(ev, "exports/{email}.csv: 1 object (1 version, 1 delete marker)") {
				t.Errorf("evidence = %s", ev)
			}
			if n := f.Count(sub); n != 0 {
				t.Errorf("%d objects left after the purge", n)
			}
		})
	}
	t.Run("never versioned", func(t *testing.T) {
		t.Parallel()
		f := s3fake.Start(t, s3fake.Options{})
		f.SetVersioning(s3fake.DefaultBucket, "")
		if n := f.SeedRecoverable(connectortest.VendorSubject(6)); n != 0 {
			t.Errorf("SeedRecoverable in an unversioned bucket = %d, want 0", n)
		}
	})
}
