package certificate_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/store/sqlite"
	"github.com/lethe-dev/lethe/internal/translog"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

func TestCanonicalizeRFC8785(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		// RFC 8785 §3.2.3 sorting example.
		{`{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`,
			"{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"\u00f6\":\"Latin Small Letter O With Diaeresis\",\"\u20ac\":\"Euro Sign\",\"\U0001F600\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}"},
		// RFC 8785 §3.2.2 example.
		{`{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false]}`,
			`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`},
		{`[0, -0, 1, -1, 1e21, 1e20, 123456789012345680000, 0.000001, 1e-7, 9007199254740992, 5e-324, 1.7976931348623157e308]`,
			`[0,0,1,-1,1e+21,100000000000000000000,123456789012345680000,0.000001,1e-7,9007199254740992,5e-324,1.7976931348623157e+308]`},
		{` { "b" : [ ] , "a" : { } } `, `{"a":{},"b":[]}`},
		{`"<&>\u2028"`, "\"<&>\u2028\""},
	}
	for _, tc := range tests {
		got, err := certificate.Canonicalize([]byte(tc.in))
		if err != nil {
			t.Errorf("Canonicalize(%s): %v", tc.in, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("Canonicalize(%s)\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{`{"a":1,"a":2}`, `{"a":1} x`, "\"\xff\"", `[1e999]`, `{`} {
		if _, err := certificate.Canonicalize([]byte(bad)); err == nil {
			t.Errorf("Canonicalize(%q) accepted bad input", bad)
		}
	}
}

var testNonce = bytes.Repeat([]byte{9}, 32)

func fixture(t testing.TB) (erasure.Request, []erasure.Task) {
	t.Helper()
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	h, err := erasure.NewHasher(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	subject := erasure.Subject{Email: "alice@example.com", Phone: "+447700900123"}
	ref := h.Ref(subject)
	ref.Commitment = erasure.Commit(testNonce, subject.Email)
	subject = subject.With("user_ids.app", "app-77")
	req := erasure.Request{ID: erasure.NewID(), Status: erasure.RequestCompleted, Jurisdiction: erasure.GDPR,
		Subject: subject, SubjectRef: ref, ReceivedAt: at, DueAt: erasure.GDPR.DueDate(at), CompletedAt: at.Add(time.Hour),
		Sources: erasure.Sources{erasure.Email: erasure.SourceRequest, erasure.Phone: erasure.SourceRequest, "user_ids.app": "shop-db"}}
	tasks := []erasure.Task{
		{Connector: "shop-db", ConnectorType: "sql", Phase: erasure.PhaseResolve, Status: erasure.TaskResolved, Attempt: 1,
			SearchedBy: []erasure.Kind{erasure.Email}, Found: []erasure.Kind{"user_ids.app"},
			Evidence: []erasure.Evidence{{Kind: "resolve", Value: "customers: 1 row"}}, CompletedAt: at.Add(time.Second)},
		{Connector: "shop-db", ConnectorType: "sql", Phase: erasure.PhaseErase, Status: erasure.TaskErased, Attempt: 2, RecordsErased: 5, Verified: "clean",
			SearchedBy: []erasure.Kind{erasure.Email, erasure.Phone},
			Evidence:   []erasure.Evidence{{Kind: "statement", Value: "customers: 1 row"}}, CompletedAt: at.Add(time.Hour)},
		{Connector: "files", ConnectorType: "filesystem", Status: erasure.TaskNotFound, Attempt: 1, SearchedBy: []erasure.Kind{erasure.Email},
			CompletedAt: at.Add(time.Minute)},
		{Connector: "analytics", ConnectorType: "segment", Status: erasure.TaskErased, Attempt: 1, RecordsUnknown: true,
			SearchedBy: []erasure.Kind{"user_ids.app"}, Evidence: []erasure.Evidence{{Kind: "regulation", Value: "r-1: FINISHED"}}, CompletedAt: at.Add(time.Hour)},
	}
	return req, tasks
}

const testOrigin = "test.example/log"

// issue issues a certificate for the fixture through the real Issuer: a
// signature and a leaf in a transparency log kept in a SQLite store.
func issue(t *testing.T) (*certificate.Signer, []byte, certificate.JWKS) {
	t.Helper()
	priv, err := certificate.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return issueWith(t, priv, openStore(t), certificate.Options{Issuer: "Example Ltd", BackupRetention: 35 * 24 * time.Hour})
}

func openStore(t testing.TB) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "lethe.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

func issueWith(t *testing.T, priv ed25519.PrivateKey, st store.Store, opt certificate.Options) (*certificate.Signer, []byte, certificate.JWKS) {
	t.Helper()
	s := certificate.NewSigner(priv)
	ls, err := translog.NewLogSigner(testOrigin, priv)
	if err != nil {
		t.Fatal(err)
	}
	iss := &certificate.Issuer{Signer: s, Log: translog.NewLog(testOrigin, ls), Options: opt}
	req, tasks := fixture(t)
	var c store.Certificate
	err = st.InTx(context.Background(), func(tx store.Tx) error {
		var err error
		c, err = iss.Issue(context.Background(), tx, req, tasks, strings.Repeat("ab", 32), req.CompletedAt)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, c.Document, certificate.JWKS{Keys: []certificate.JWK{s.PublicJWK()}}
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	s, doc, keys := issue(t)
	v, err := certificate.Verify(doc, keys)
	if err != nil {
		t.Fatalf("a fresh certificate does not verify: %v", err)
	}
	p := v.Payload
	if v.KeyID != s.KeyID() || p.Issuer != "Example Ltd" || len(p.Systems) != 3 || p.Systems[1].Connector != "files" || !p.DeadlineMet || p.Schema != certificate.SchemaV2 {
		t.Errorf("payload read back wrong: %+v", v)
	}
	if p.Systems[1].Verification != "not_available" || p.Systems[2].RecordsErased != (certificate.Records{N: 5}) || p.Systems[0].RecordsErased != (certificate.Records{Unknown: true}) {
		t.Errorf("systems = %+v", p.Systems)
	}
	if got := p.Systems[2].SearchedBy; len(got) != 2 || got[1] != (erasure.Source{Kind: erasure.Phone, From: erasure.SourceRequest}) {
		t.Errorf("shop-db searched by %v", got)
	}
	if len(p.Resolution) != 1 || p.Resolution[0].Found[0] != "user_ids.app" || p.Resolution[0].LookedUpBy[0].Kind != erasure.Email {
		t.Errorf("resolution = %+v", p.Resolution)
	}
	if len(p.Identifiers) != 3 || p.Identifiers[2] != (erasure.Source{Kind: "user_ids.app", From: "shop-db"}) || p.OriginalDueAt != p.DueAt || p.Extension != nil {
		t.Errorf("identifiers %v, original due %s, extension %v", p.Identifiers, p.OriginalDueAt, p.Extension)
	}
	if !bytes.Contains(doc, []byte(`\"records_erased\":\"unknown\"`)) && !bytes.Contains(doc, []byte(`"records_erased": "unknown"`)) {
		t.Error(`an uncounted erasure is not written "unknown"`)
	}
	for _, pii := range []string{"alice", "example.com", "447700900123", "app-77"} {
		if bytes.Contains(doc, []byte(pii)) {
			t.Errorf("the certificate contains %q", pii)
		}
		if payload, _ := base64.RawURLEncoding.DecodeString(docField(t, doc, "payload")); bytes.Contains(payload, []byte(pii)) {
			t.Errorf("the signed payload contains %q", pii)
		}
	}
	sum := v.Summary()
	for _, want := range []string{"shop-db (sql): erased 5 records (searched by email (request), phone (request))",
		"files (filesystem): searched and held nothing (searched by email (request))", "analytics (segment): erased an unknown number of records",
		"shop-db (sql): looked up by email (request), supplied user_ids.app", "user_ids.app (shop-db)", "deadline met", "GDPR"} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
}

func docField(t *testing.T, doc []byte, field string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	var s string
	_ = json.Unmarshal(m[field], &s)
	return s
}

func setField(t *testing.T, doc []byte, field string, value any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	m[field] = value
	b, _ := json.Marshal(m)
	return b
}

func TestTamperingFails(t *testing.T) {
	t.Parallel()
	s, doc, keys := issue(t)
	payload, _ := base64.RawURLEncoding.DecodeString(docField(t, doc, "payload"))
	forged := bytes.Replace(payload, []byte(`"records_erased":5`), []byte(`"records_erased":9`), 1)
	hdr := func(h string) string { return base64.RawURLEncoding.EncodeToString([]byte(h)) }
	var readable map[string]any
	_ = json.Unmarshal(payload, &readable)
	readable["issuer"] = "Someone Else"
	other, _ := certificate.GenerateKey()
	otherKeys := certificate.JWKS{Keys: []certificate.JWK{certificate.NewSigner(other).PublicJWK()}}
	badKid := s.PublicJWK()
	badKid.Kid = "attacker-chosen"

	for _, tc := range []struct {
		name string
		doc  []byte
		keys certificate.JWKS
		want string
	}{
		{"payload edited", setField(t, doc, "payload", base64.RawURLEncoding.EncodeToString(forged)), keys, "signature does not match"},
		{"readable copy edited", setField(t, doc, "certificate", readable), keys, "readable copy differs"},
		{"signature altered", setField(t, doc, "signature", strings.Repeat("A", 86)), keys, "signature does not match"},
		{"alg none", setField(t, doc, "protected", hdr(`{"alg":"none","kid":"`+s.KeyID()+`","typ":"lethe-certificate+jws"}`)), keys, "EdDSA only"},
		{"alg HS256", setField(t, doc, "protected", hdr(`{"alg":"HS256","kid":"`+s.KeyID()+`","typ":"lethe-certificate+jws"}`)), keys, "EdDSA only"},
		{"unknown kid", setField(t, doc, "protected", hdr(`{"alg":"EdDSA","kid":"nope","typ":"lethe-certificate+jws"}`)), keys, "not in the key set"},
		{"key set lacks the key", doc, otherKeys, "not in the key set"},
		{"jwk whose kid is not its thumbprint", doc, certificate.JWKS{Keys: []certificate.JWK{badKid}}, "not in the key set"},
		{"truncated", doc[:len(doc)/2], keys, "not a certificate"},
		{"not json", []byte("hello"), keys, "not a certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := certificate.Verify(tc.doc, tc.keys)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestNonCanonicalPayloadRefused(t *testing.T) {
	t.Parallel()
	priv, _ := certificate.GenerateKey()
	s := certificate.NewSigner(priv)
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","kid":"` + s.KeyID() + `","typ":"lethe-certificate+jws"}`))
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{ "schema": "x" }`))
	sig := base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(hdr+"."+payload)))
	doc, _ := json.Marshal(map[string]string{"protected": hdr, "payload": payload, "signature": sig})
	_, err := certificate.Verify(doc, certificate.JWKS{Keys: []certificate.JWK{s.PublicJWK()}})
	if err == nil || !strings.Contains(err.Error(), "not canonical") {
		t.Errorf("Verify = %v, want refused as not canonical", err)
	}
}

// TestStandardJWSVerification checks the document as a third-party JOSE
// library would: base64url(header) "." base64url(payload), Ed25519, the
// public key taken from the JWK's x. No package code is used.
func TestStandardJWSVerification(t *testing.T) {
	t.Parallel()
	_, doc, keys := issue(t)
	var jws struct{ Protected, Payload, Signature string }
	if err := json.Unmarshal(doc, &jws); err != nil {
		t.Fatal(err)
	}
	x, err := base64.RawURLEncoding.DecodeString(keys.Keys[0].X)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(jws.Signature)
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(ed25519.PublicKey(x), []byte(jws.Protected+"."+jws.Payload), sig) {
		t.Fatal("a plain Ed25519 JWS check fails")
	}
	var h map[string]string
	hb, _ := base64.RawURLEncoding.DecodeString(jws.Protected)
	if err := json.Unmarshal(hb, &h); err != nil || h["alg"] != "EdDSA" || h["kid"] != keys.Keys[0].Kid {
		t.Errorf("header = %v, %v", h, err)
	}
}

func TestKeyRotationAndKeySets(t *testing.T) {
	t.Parallel()
	old, doc, oldKeys := issue(t)
	newPriv, _ := certificate.GenerateKey()
	rotated := certificate.JWKS{Keys: []certificate.JWK{certificate.NewSigner(newPriv).PublicJWK(), old.PublicJWK()}}
	if _, err := certificate.Verify(doc, rotated); err != nil {
		t.Errorf("an old certificate fails after rotation: %v", err)
	}

	dir := t.TempDir()
	pubPEM, err := certificate.MarshalPublicKeyPEM(ed25519.PublicKey(mustDecode(t, old.PublicJWK().X)))
	if err != nil {
		t.Fatal(err)
	}
	privPEM, _ := certificate.MarshalPrivateKeyPEM(newPriv)
	if back, err := certificate.ParsePrivateKeyPEM(privPEM); err != nil || !back.Equal(newPriv) {
		t.Errorf("private key PEM round trip: %v", err)
	}
	if _, err := certificate.ParsePrivateKeyPEM(pubPEM); err == nil {
		t.Error("a public key parsed as a private key")
	}
	jwksJSON, _ := json.Marshal(oldKeys)
	for name, body := range map[string][]byte{"pub.pem": pubPEM, "jwks.json": jwksJSON} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, body, 0o600); err != nil {
			t.Fatal(err)
		}
		ks, err := certificate.LoadKeySet(context.Background(), path, http.DefaultClient)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := certificate.Verify(doc, ks); err != nil {
			t.Errorf("verify with %s: %v", name, err)
		}
	}
	fromPriv, err := certificate.ParseKeySet(privPEM)
	if err != nil || fromPriv.Keys[0].Kid != certificate.NewSigner(newPriv).KeyID() {
		t.Errorf("key set from a private key: %v", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(jwksJSON) }))
	defer srv.Close()
	ks, err := certificate.LoadKeySet(context.Background(), srv.URL, srv.Client())
	if err != nil || len(ks.Keys) != 1 {
		t.Errorf("key set over HTTP: %v", err)
	}
	for _, bad := range []string{"", "{}", `{"keys":[]}`, "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"} {
		if _, err := certificate.ParseKeySet([]byte(bad)); err == nil {
			t.Errorf("ParseKeySet(%q) accepted it", bad)
		}
	}
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewPayloadRefusesUnfinishedTasks(t *testing.T) {
	t.Parallel()
	req, tasks := fixture(t)
	tasks[1].Status = erasure.TaskRunning
	if _, err := certificate.NewPayload(req, tasks, certificate.Options{}, "h", time.Now()); err == nil {
		t.Error("a payload was made with a running task")
	}
	if _, err := certificate.NewPayload(req, nil, certificate.Options{}, "h", time.Now()); err == nil {
		t.Error("a payload was made with no tasks")
	}
	req, tasks = fixture(t)
	req.CompletedAt = req.DueAt.Add(time.Second)
	p, err := certificate.NewPayload(req, tasks, certificate.Options{}, "h", time.Now())
	if err != nil || p.DeadlineMet {
		t.Errorf("a late completion is marked deadline met: %v", err)
	}
}

func TestLogProofTamperingFails(t *testing.T) {
	t.Parallel()
	_, doc, keys := issue(t)
	var d map[string]any
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	edit := func(f func(log map[string]any)) []byte {
		var c map[string]any
		_ = json.Unmarshal(doc, &c)
		f(c["log"].(map[string]any))
		b, _ := json.Marshal(c)
		return b
	}
	checkpoint := d["log"].(map[string]any)["checkpoint"].(string)
	for name, bad := range map[string][]byte{
		"no log":    setField(t, doc, "log", nil),
		"index":     edit(func(l map[string]any) { l["index"] = 1 }),
		"tree size": edit(func(l map[string]any) { l["tree_size"] = 5 }),
		"proof hash": edit(func(l map[string]any) {
			l["inclusion_proof"] = []string{base64.StdEncoding.EncodeToString(make([]byte, 32))}
		}),
		"checkpoint root": edit(func(l map[string]any) { l["checkpoint"] = strings.Replace(checkpoint, "\n1\n", "\n2\n", 1) }),
		"checkpoint sig":  edit(func(l map[string]any) { l["checkpoint"] = checkpoint[:len(checkpoint)-6] + "AAAA=\n" }),
		"other origin":    edit(func(l map[string]any) { l["origin"] = "evil.example/log" }),
	} {
		if _, err := certificate.Verify(bad, keys); err == nil {
			t.Errorf("%s: a tampered log proof verifies", name)
		}
	}
	if _, err := certificate.VerifyFor(doc, keys, "another.example/log"); err == nil {
		t.Error("a certificate from another log verifies with the origin pinned")
	}
	v, err := certificate.VerifyFor(doc, keys, testOrigin)
	if err != nil || v.Log.Index != 0 || v.Log.Checkpoint.Size != 1 {
		t.Errorf("log position = %+v, %v", v.Log, err)
	}
}

// TestEveryByteMatters flips each byte of the signed parts of a
// certificate and checks that verification fails.
func TestEveryByteMatters(t *testing.T) {
	t.Parallel()
	_, doc, keys := issue(t)
	var d map[string]any
	_ = json.Unmarshal(doc, &d)
	for _, field := range []string{"protected", "payload", "signature"} {
		v := d[field].(string)
		for i := 0; i < len(v); i += max(1, len(v)/97) {
			c := []byte(v)
			c[i] = flip(c[i])
			if _, err := certificate.Verify(setField(t, doc, field, string(c)), keys); err == nil {
				t.Fatalf("%s with byte %d changed still verifies", field, i)
			}
		}
	}
}

func flip(b byte) byte {
	if b == 'A' {
		return 'B'
	}
	return 'A'
}

func TestPayloadMatchesPublishedSchema(t *testing.T) {
	t.Parallel()
	_, doc, keys := issue(t)
	v, err := certificate.Verify(doc, keys)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(v.Payload)
	sch := compileSchema(t, certificate.SchemaV2, certificate.SchemaV2JSON)
	inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err := sch.Validate(inst); err != nil {
		t.Errorf("the payload does not match its schema: %v", err)
	}
	var loose map[string]any
	_ = json.Unmarshal(payload, &loose)
	loose["surprise"] = true
	if sch.Validate(loose) == nil {
		t.Error("the schema accepts unknown members")
	}
	if v.Payload.BackupPurgeBy != "2026-06-05" || !strings.Contains(v.Payload.Statement, "by 2026-06-05") {
		t.Errorf("backup purge-by %q, statement %q", v.Payload.BackupPurgeBy, v.Payload.Statement)
	}
}

func compileSchema(t *testing.T, id string, doc []byte) *jsonschema.Schema {
	t.Helper()
	schema, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(id, schema); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(id)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// TestVersion1StillVerifies: a certificate issued before version 2 (made
// by the release before it, kept in testdata) verifies, matches the v1
// schema, and its summary says what v1 did not record.
func TestVersion1StillVerifies(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("testdata/v1-certificate.json")
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := os.ReadFile("testdata/v1-keys.json")
	keys, err := certificate.ParseKeySet(jwks)
	if err != nil {
		t.Fatal(err)
	}
	v, err := certificate.Verify(doc, keys)
	if err != nil {
		t.Fatalf("a v1 certificate no longer verifies: %v", err)
	}
	if v.Payload.Schema != certificate.SchemaV1 || len(v.Payload.Systems) != 2 || v.Payload.Systems[0].RecordsErased.N == 0 {
		t.Fatalf("v1 payload read as %+v", v.Payload)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(docField(t, doc, "payload"))
	inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err := compileSchema(t, certificate.SchemaV1, certificate.SchemaJSON).Validate(inst); err != nil {
		t.Errorf("the v1 payload does not match the v1 schema: %v", err)
	}
	if err := compileSchema(t, certificate.SchemaV2, certificate.SchemaV2JSON).Validate(inst); err == nil {
		t.Error("the v2 schema accepts a v1 payload")
	}
	if sum := v.Summary(); !strings.Contains(sum, "erased") {
		t.Errorf("summary:\n%s", sum)
	}
}

func TestExtensionAndNotApplicable(t *testing.T) {
	t.Parallel()
	req, tasks := fixture(t)
	first := req.DueAt
	req.OriginalDueAt, req.DueAt = first, first.AddDate(0, 2, 0)
	req.ExtendedAt, req.ExtensionCategory = req.ReceivedAt.Add(24*time.Hour), "number_of_requests"
	req.CompletedAt = first.Add(24 * time.Hour) // after the first deadline, within the extended one
	tasks[2].Status, tasks[2].SearchedBy, tasks[2].Reason = erasure.TaskNotApplicable, nil, "never a customer of the file store"
	p, err := certificate.NewPayload(req, tasks, certificate.Options{Issuer: "X"}, "h", req.CompletedAt)
	if err != nil {
		t.Fatal(err)
	}
	if p.OriginalDueAt != first.Format(time.RFC3339) || p.DueAt != req.DueAt.Format(time.RFC3339) || !p.DeadlineMet {
		t.Errorf("due %s (first %s), met %v", p.DueAt, p.OriginalDueAt, p.DeadlineMet)
	}
	if p.Extension == nil || p.Extension.Category != "number_of_requests" || !strings.Contains(p.Extension.Basis, "Art. 12(3)") {
		t.Errorf("extension = %+v", p.Extension)
	}
	if len(p.NotApplicable) != 1 || p.NotApplicable[0].Reason != "never a customer of the file store" || p.Outcome != "completed" {
		t.Errorf("not applicable = %+v, outcome %s", p.NotApplicable, p.Outcome)
	}
	priv, _ := certificate.GenerateKey()
	s := certificate.NewSigner(priv)
	d, _ := s.Sign(p)
	_, err = certificate.Verify(d.JSON(), certificate.JWKS{Keys: []certificate.JWK{s.PublicJWK()}})
	if err == nil || !strings.Contains(err.Error(), "no transparency log proof") {
		t.Fatalf("every payload check should pass, leaving the missing log proof: %v", err)
	}
	v := certificate.Verified{Payload: p}
	for _, want := range []string{"extended on", "from " + p.OriginalDueAt, "Art. 12(3): the number of requests", "not applicable: never a customer"} {
		if sum := v.Summary(); !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
}

func TestCommitment(t *testing.T) {
	t.Parallel()
	_, doc, keys := issue(t)
	v, _ := certificate.Verify(doc, keys)
	if !certificate.VerifyCommitment(v.Payload, " Alice@Example.com ", testNonce) {
		t.Error("the person's email and nonce do not open the commitment")
	}
	if certificate.VerifyCommitment(v.Payload, "bob@example.com", testNonce) || certificate.VerifyCommitment(v.Payload, "alice@example.com", make([]byte, 32)) {
		t.Error("a wrong email or nonce opens the commitment")
	}
}

func TestRotatedKeysStillVerify(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	oldKey, _ := certificate.GenerateKey()
	newKey, _ := certificate.GenerateKey()
	_, oldDoc, oldSet := issueWith(t, oldKey, st, certificate.Options{Issuer: "X"})
	_, newDoc, newSet := issueWith(t, newKey, st, certificate.Options{Issuer: "X"})
	both := certificate.JWKS{Keys: append(newSet.Keys, oldSet.Keys...)}
	for name, doc := range map[string][]byte{"old": oldDoc, "new": newDoc} {
		if _, err := certificate.Verify(doc, both); err != nil {
			t.Errorf("%s certificate after rotation: %v", name, err)
		}
	}
	if _, err := certificate.Verify(oldDoc, newSet); err == nil {
		t.Error("an old certificate verifies without its key")
	}
}

// TestJWKThumbprintRFC8037 checks the key id against RFC 8037 Appendix A:
// the Ed25519 key of A.1/A.2 has the RFC 7638 thumbprint given in A.3.
func TestJWKThumbprintRFC8037(t *testing.T) {
	t.Parallel()
	seed := mustDecode(t, "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	jwk := certificate.NewSigner(ed25519.NewKeyFromSeed(seed)).PublicJWK()
	want := certificate.JWK{Kty: "OKP", Crv: "Ed25519", X: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
		Kid: "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", Use: "sig", Alg: "EdDSA"}
	if jwk != want {
		t.Errorf("JWK = %+v\nwant %+v", jwk, want)
	}
}

// signRaw signs header and payload bytes as they are, the way a careless or
// hostile signer holding a trusted key could.
func signRaw(priv ed25519.PrivateKey, header, payload []byte) []byte {
	enc := base64.RawURLEncoding
	h, p := enc.EncodeToString(header), enc.EncodeToString(payload)
	doc, _ := json.Marshal(map[string]string{"protected": h, "payload": p, "signature": enc.EncodeToString(ed25519.Sign(priv, []byte(h+"."+p)))})
	return doc
}

// TestSignedButWrong covers documents that a trusted key did sign but that
// are still not valid certificates.
func TestSignedButWrong(t *testing.T) {
	t.Parallel()
	priv, _ := certificate.GenerateKey()
	s := certificate.NewSigner(priv)
	keys := certificate.JWKS{Keys: []certificate.JWK{s.PublicJWK()}}
	req, tasks := fixture(t)
	good, err := certificate.NewPayload(req, tasks, certificate.Options{Issuer: "X"}, "h", req.CompletedAt)
	if err != nil {
		t.Fatal(err)
	}
	signed := func(edit func(p *certificate.Payload)) []byte {
		p := good
		p.Systems = append([]certificate.System(nil), good.Systems...)
		edit(&p)
		d, err := s.Sign(p)
		if err != nil {
			t.Fatal(err)
		}
		return d.JSON()
	}
	payload, _ := json.Marshal(good)
	canonical, _ := certificate.Canonicalize(payload)
	kid := s.KeyID()
	for _, tc := range []struct {
		name string
		doc  []byte
		want string
	}{
		// Every payload check passed; only the log proof is missing.
		{"no log proof", signed(func(*certificate.Payload) {}), "no transparency log proof"},
		{"crit header", signRaw(priv, []byte(`{"alg":"EdDSA","crit":["exp"],"exp":1,"kid":"`+kid+`","typ":"lethe-certificate+jws"}`), canonical), "critical"},
		{"other typ", signRaw(priv, []byte(`{"alg":"EdDSA","kid":"`+kid+`","typ":"JWT"}`), canonical), "not a Lethe certificate"},
		{"no kid", signRaw(priv, []byte(`{"alg":"EdDSA","typ":"lethe-certificate+jws"}`), canonical), "no key id"},
		{"not canonical", signRaw(priv, []byte(`{"alg":"EdDSA","kid":"`+kid+`","typ":"lethe-certificate+jws"}`), payload), "not canonical"},
		{"newer schema", signed(func(p *certificate.Payload) { p.Schema = "https://lethe.dev/schemas/certificate/v3" }), "unknown certificate schema"},
		{"v1 with v2 members", signed(func(p *certificate.Payload) { p.Schema = certificate.SchemaV1 }), "holds members of v2"},
		{"unknown count of nothing", signed(func(p *certificate.Payload) {
			p.Systems[1].RecordsErased = certificate.Records{Unknown: true}
		}), "unknown record count"},
		{"negative records", signed(func(p *certificate.Payload) { p.Systems[1].RecordsErased = certificate.Records{N: -2} }), "negative record count"},
		{"not applicable without reason", signed(func(p *certificate.Payload) { p.Systems[1].Outcome = "not_applicable" }), "not applicable without a reason"},
		{"deadline moved silently", signed(func(p *certificate.Payload) { p.DueAt = "2027-01-01T00:00:00Z" }), "no extension is recorded"},
		{"look-up evidence", signed(func(p *certificate.Payload) {
			p.Resolution = append([]certificate.Lookup(nil), p.Resolution...)
			p.Resolution[0].EvidenceDigest = "sha256:00"
		}), "look-up by shop-db: the evidence"},
		{"outcome against systems", signed(func(p *certificate.Payload) { p.Outcome = "completed_with_exemptions" }), "outcome"},
		{"unfinished system", signed(func(p *certificate.Payload) { p.Systems[0].Outcome = "failed" }), "does not finish an erasure"},
		{"no systems", signed(func(p *certificate.Payload) { p.Systems = nil }), "lists no systems"},
		{"bad time", signed(func(p *certificate.Payload) { p.DueAt = "next week" }), "due_at is not a time"},
		{"evidence digest", signed(func(p *certificate.Payload) { p.Systems[2].EvidenceDigest = "sha256:00" }), "evidence does not match"},
		{"no request id", signed(func(p *certificate.Payload) { p.RequestID = "" }), "request or certificate id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := certificate.Verify(tc.doc, keys)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestBase64LineBreaksRefused(t *testing.T) {
	t.Parallel()
	_, doc, keys := issue(t)
	sig := docField(t, doc, "signature")
	if _, err := certificate.Verify(setField(t, doc, "signature", sig[:40]+"\n"+sig[40:]), keys); err == nil || !strings.Contains(err.Error(), "signature is not base64url") {
		t.Errorf("Verify = %v, want the signature refused", err)
	}
}

func TestExemptedSystem(t *testing.T) {
	t.Parallel()
	req, tasks := fixture(t)
	tasks[2].Status, tasks[2].ExemptionBasis = erasure.TaskExempted, "art17-3-e"
	if _, err := certificate.NewPayload(req, tasks, certificate.Options{}, "h", req.CompletedAt); err == nil {
		t.Error("a request marked completed was certified with an exempted task")
	}
	req.Status = erasure.RequestCompletedWithExemptions
	p, err := certificate.NewPayload(req, tasks, certificate.Options{Issuer: "X"}, "h", req.CompletedAt)
	if err != nil {
		t.Fatal(err)
	}
	if p.Outcome != "completed_with_exemptions" || len(p.Retained) != 1 || p.Retained[0].Connector != "files" ||
		!strings.HasPrefix(p.Retained[0].Basis, "Art. 17(3)(e)") || !strings.Contains(p.Statement, "listed under retained") {
		t.Errorf("payload = %+v", p)
	}
	sum := certificate.Verified{Payload: p}.Summary()
	if !strings.Contains(sum, "files (filesystem): kept under Art. 17(3)(e)") {
		t.Errorf("summary does not say what was kept:\n%s", sum)
	}
	req.Status = erasure.RequestInProgress
	if _, err := certificate.NewPayload(req, tasks, certificate.Options{}, "h", req.CompletedAt); err == nil {
		t.Error("a request still in progress was certified")
	}
}

func TestLoadKeySetLimits(t *testing.T) {
	t.Parallel()
	huge := append([]byte(`{"keys":[`), bytes.Repeat([]byte(" "), 1<<20)...)
	path := filepath.Join(t.TempDir(), "huge.json")
	if err := os.WriteFile(path, huge, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(huge)
	}))
	defer srv.Close()
	for _, source := range []string{path, srv.URL, srv.URL + "/missing", filepath.Join(t.TempDir(), "none.json")} {
		if _, err := certificate.LoadKeySet(context.Background(), source, nil); err == nil {
			t.Errorf("LoadKeySet(%s) succeeded", source)
		}
	}
}
