package certificate

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// JWK is an Ed25519 public key as a JSON Web Key (RFC 8037).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
}

// JWKS is a JSON Web Key Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// PublicJWK returns pub as a JWK whose kid is its RFC 7638 thumbprint.
func PublicJWK(pub ed25519.PublicKey) JWK {
	x := b64.EncodeToString(pub)
	// RFC 7638 §3.2: the required members, in lexicographic order.
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`))
	return JWK{Kty: "OKP", Crv: "Ed25519", X: x, Kid: b64.EncodeToString(sum[:]), Use: "sig", Alg: "EdDSA"}
}

// Key returns the public key with kid. A key whose kid is not its
// thumbprint is not trusted.
func (s JWKS) Key(kid string) (ed25519.PublicKey, bool) {
	for _, k := range s.Keys {
		if k.Kid != kid || k.Kty != "OKP" || k.Crv != "Ed25519" {
			continue
		}
		pub, err := decodeB64(k.X)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return nil, false
		}
		if PublicJWK(pub).Kid != kid {
			return nil, false
		}
		return pub, true
	}
	return nil, false
}

// PublicKeys returns every usable key of the set.
func (s JWKS) PublicKeys() []ed25519.PublicKey {
	var out []ed25519.PublicKey
	for _, k := range s.Keys {
		if pub, ok := s.Key(k.Kid); ok {
			out = append(out, pub)
		}
	}
	return out
}

// GenerateKey makes a new Ed25519 signing key.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	return priv, err
}

// MarshalPrivateKeyPEM encodes priv as a PKCS#8 "PRIVATE KEY" PEM block.
func MarshalPrivateKeyPEM(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKeyPEM reads a PKCS#8 Ed25519 private key. Its error never
// quotes the input.
func ParsePrivateKeyPEM(b []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM \"PRIVATE KEY\" block (PKCS#8)")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("not a PKCS#8 private key")
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the key is %T; certificates need Ed25519", k)
	}
	return priv, nil
}

// MarshalPublicKeyPEM encodes pub as a PKIX "PUBLIC KEY" PEM block.
func MarshalPublicKeyPEM(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParseKeySet reads public keys from a JWKS document, from one or more PEM
// public keys, or from a PEM private key (its public half).
func ParseKeySet(b []byte) (JWKS, error) {
	if trimmed := strings.TrimSpace(string(b)); strings.HasPrefix(trimmed, "{") {
		var s JWKS
		if err := json.Unmarshal(b, &s); err != nil {
			return JWKS{}, fmt.Errorf("not a JWKS: %w", err)
		}
		if len(s.Keys) == 0 {
			return JWKS{}, errors.New("the JWKS holds no keys")
		}
		return s, nil
	}
	var s JWKS
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		switch block.Type {
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return JWKS{}, fmt.Errorf("public key: %w", err)
			}
			pub, ok := k.(ed25519.PublicKey)
			if !ok {
				return JWKS{}, fmt.Errorf("the public key is %T; certificates use Ed25519", k)
			}
			s.Keys = append(s.Keys, PublicJWK(pub))
		case "PRIVATE KEY":
			priv, err := ParsePrivateKeyPEM(pem.EncodeToMemory(block))
			if err != nil {
				return JWKS{}, err
			}
			s.Keys = append(s.Keys, PublicJWK(priv.Public().(ed25519.PublicKey)))
		}
	}
	if len(s.Keys) == 0 {
		return JWKS{}, errors.New("no key found: give a JWKS (JSON) or a PEM \"PUBLIC KEY\"")
	}
	return s, nil
}

const maxKeySet = 1 << 20

// LoadKeySet reads a key set (see ParseKeySet) from a file or from an
// http(s) URL serving a JWKS, such as Lethe's /v1/keys; at most 1 MiB. A nil
// client is http.DefaultClient.
func LoadKeySet(ctx context.Context, source string, client *http.Client) (JWKS, error) {
	if !strings.HasPrefix(source, "http://") && !strings.HasPrefix(source, "https://") {
		f, err := os.Open(source)
		if err != nil {
			return JWKS{}, fmt.Errorf("read keys: %w", err)
		}
		defer f.Close()
		b, err := readLimited(f)
		if err != nil {
			return JWKS{}, fmt.Errorf("read keys: %w", err)
		}
		return ParseKeySet(b)
	}
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, source, nil)
	if err != nil {
		return JWKS{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return JWKS{}, fmt.Errorf("fetch keys: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return JWKS{}, fmt.Errorf("fetch keys: %s answered %s", source, resp.Status)
	}
	b, err := readLimited(resp.Body)
	if err != nil {
		return JWKS{}, fmt.Errorf("fetch keys: %w", err)
	}
	return ParseKeySet(b)
}

func readLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxKeySet+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeySet {
		return nil, errors.New("the key set is larger than 1 MiB")
	}
	return b, nil
}
