package certificate_test

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"

	"github.com/lethe-dev/lethe/internal/certificate"
)

// FuzzVerify feeds the verifier certificates an attacker could write,
// starting from a genuine one. Whatever the input, Verify must not panic,
// and if it accepts a document, the document can only say what the
// genuine certificate says: nothing else is signed by the trusted key.
func FuzzVerify(f *testing.F) {
	genuine, err := os.ReadFile("testdata/v1-certificate.json")
	if err != nil {
		f.Fatal(err)
	}
	jwks, err := os.ReadFile("testdata/v1-keys.json")
	if err != nil {
		f.Fatal(err)
	}
	keys, err := certificate.ParseKeySet(jwks)
	if err != nil {
		f.Fatal(err)
	}
	want, err := certificate.Verify(genuine, keys)
	if err != nil {
		f.Fatalf("the genuine certificate does not verify: %v", err)
	}
	f.Add(genuine)
	f.Add(genuine[:len(genuine)/2])
	f.Add(bytes.Replace(genuine, []byte(`"records_erased"`), []byte(`"records_erased "`), 1))
	f.Add(bytes.Replace(genuine, []byte(`"EdDSA"`), []byte(`"none"`), 1))
	var doc map[string]any
	if err := json.Unmarshal(genuine, &doc); err == nil {
		delete(doc, "log")
		b, _ := json.Marshal(doc)
		f.Add(b)
		doc["certificate"] = map[string]any{"schema": "lethe.erasure-certificate/v1", "request_id": "forged"}
		b, _ = json.Marshal(doc)
		f.Add(b)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"protected":"","payload":"","signature":""}`))
	f.Add([]byte("\x00\xff"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		got, err := certificate.Verify(doc, keys)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("a refusal without a reason")
			}
			return
		}
		if !reflect.DeepEqual(got.Payload, want.Payload) || got.KeyID != want.KeyID {
			t.Fatalf("accepted a certificate that says something else:\n%+v", got.Payload)
		}
	})
}
