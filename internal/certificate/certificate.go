// Package certificate makes and checks erasure certificates: the payload as
// RFC 8785 canonical JSON, signed as a JWS (RFC 7515, flattened JSON
// serialization) with EdDSA over Ed25519, keys published as a JWKS. A
// certificate names the data subject only by keyed hashes; it holds no
// personal data. Verify needs nothing but the document and the public keys.
package certificate

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
)

// SchemaV1 identifies version 1 of the payload.
const SchemaV1 = "https://lethe.dev/schemas/certificate/v1"

// Type is the JWS "typ" of a certificate.
const Type = "lethe-certificate+jws"

// Payload is what a certificate attests.
type Payload struct {
	Schema        string             `json:"schema"`
	CertificateID string             `json:"certificate_id"`
	RequestID     string             `json:"request_id"`
	Issuer        string             `json:"issuer"`
	Jurisdiction  string             `json:"jurisdiction"`
	Subject       erasure.SubjectRef `json:"subject"`
	// Outcome is the request's final status: completed or
	// completed_with_exemptions.
	Outcome     string   `json:"outcome"`
	ReceivedAt  string   `json:"received_at"`
	DueAt       string   `json:"due_at"`
	CompletedAt string   `json:"completed_at"`
	IssuedAt    string   `json:"issued_at"`
	DeadlineMet bool     `json:"deadline_met"`
	Systems     []System `json:"systems"`
	// EventLogHead is the hash of the request's last event before the
	// certificate: it ties the certificate to the request's event chain.
	EventLogHead string `json:"event_log_head"`
	// Statement says in words what the certificate attests, and what not.
	Statement string `json:"statement"`
	// BackupPurgeBy is when the last backup holding the subject's data
	// expires under the organisation's backup retention (RFC 3339 date);
	// absent when no retention is configured.
	BackupPurgeBy string `json:"backup_purge_by,omitempty"`
	// Retained lists what was kept and on which legal basis.
	Retained []Retained `json:"retained"`
}

// Retained is data a system kept, with its Art. 17(3) basis.
type Retained struct {
	Connector string `json:"connector"`
	Basis     string `json:"basis"`
}

// Options are an organisation's settings that a certificate states.
type Options struct {
	Issuer string
	// BackupRetention is how long backups are kept; zero: not stated.
	BackupRetention time.Duration
}

func statement(p Payload) string {
	s := fmt.Sprintf("%s received this erasure request under %s and sent it to every system listed here, "+
		"each of which reported the outcome shown with its evidence. This certificate attests that process and "+
		"those reports; it says nothing of systems not listed. ", p.Issuer, strings.ToUpper(p.Jurisdiction))
	if p.BackupPurgeBy != "" {
		s += "Backups were not altered; they expire under the organisation's retention by " + p.BackupPurgeBy + ". "
	} else {
		s += "Backups were not altered and are not covered. "
	}
	if len(p.Retained) > 0 {
		s += "Data kept under a legal exemption is listed under retained."
	} else {
		s += "No data was kept under a legal exemption."
	}
	return s
}

// System is one connector instance's line on the certificate.
type System struct {
	Connector     string `json:"connector"`
	Type          string `json:"type"`
	Outcome       string `json:"outcome"` // erased, not_found or exempted
	RecordsErased int64  `json:"records_erased"`
	Attempts      int    `json:"attempts"`
	CompletedAt   string `json:"completed_at"`
	// Verification is "clean" when a lookup after erasure found nothing,
	// "not_available" when the system offers no lookup, "lookup_failed"
	// when the lookup kept failing after the erasure succeeded.
	Verification   string             `json:"verification"`
	Evidence       []erasure.Evidence `json:"evidence"`
	EvidenceDigest string             `json:"evidence_digest"`
	ExemptionBasis string             `json:"exemption_basis,omitempty"`
}

func timeText(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// NewPayload describes a completed request. It uses the subject reference,
// never the subject, and refuses tasks that are not done and a request
// whose status is not the one its tasks imply.
func NewPayload(req erasure.Request, tasks []erasure.Task, opt Options, eventLogHead string, issuedAt time.Time) (Payload, error) {
	if len(tasks) == 0 {
		return Payload{}, fmt.Errorf("certificate: request %s has no tasks", req.ID)
	}
	p := Payload{
		Schema: SchemaV1, CertificateID: erasure.NewID(), RequestID: req.ID, Issuer: opt.Issuer, Retained: []Retained{},
		Jurisdiction: string(req.Jurisdiction), Subject: req.SubjectRef, Outcome: string(req.Status),
		ReceivedAt: timeText(req.ReceivedAt), DueAt: timeText(req.DueAt), CompletedAt: timeText(req.CompletedAt),
		IssuedAt: timeText(issuedAt), DeadlineMet: !req.CompletedAt.After(req.DueAt), EventLogHead: eventLogHead,
	}
	if p.Subject.Identifiers == nil {
		p.Subject.Identifiers = []erasure.IdentifierHash{}
	}
	for _, t := range tasks {
		if !t.Status.Done() {
			return Payload{}, fmt.Errorf("certificate: task for %s is %s, not done", t.Connector, t.Status)
		}
		ev := t.Evidence
		if ev == nil {
			ev = []erasure.Evidence{}
		}
		digest, err := evidenceDigest(ev)
		if err != nil {
			return Payload{}, err
		}
		verification := t.Verified
		if verification == "" {
			verification = "not_available"
		}
		basis := t.ExemptionBasis
		if d, ok := req.Jurisdiction.ExemptionBasis(basis); ok {
			basis = d
		}
		p.Systems = append(p.Systems, System{
			Connector: t.Connector, Type: t.ConnectorType, Outcome: string(t.Status), RecordsErased: t.RecordsErased,
			Attempts: t.Attempt, CompletedAt: timeText(t.CompletedAt), Verification: verification,
			Evidence: ev, EvidenceDigest: digest, ExemptionBasis: basis,
		})
	}
	if want := erasure.Aggregate(tasks); req.Status != want {
		return Payload{}, fmt.Errorf("certificate: request %s is %s, but its tasks make it %s", req.ID, req.Status, want)
	}
	sort.Slice(p.Systems, func(i, j int) bool { return p.Systems[i].Connector < p.Systems[j].Connector })
	for _, s := range p.Systems {
		if s.Outcome == string(erasure.TaskExempted) {
			p.Retained = append(p.Retained, Retained{Connector: s.Connector, Basis: s.ExemptionBasis})
		}
	}
	if opt.BackupRetention > 0 {
		p.BackupPurgeBy = req.CompletedAt.Add(opt.BackupRetention).UTC().Format(time.DateOnly)
	}
	p.Statement = statement(p)
	return p, nil
}

func evidenceDigest(ev []erasure.Evidence) (string, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return "", err
	}
	c, err := Canonicalize(b)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(c)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// Document is a certificate file: a JWS in flattened JSON serialization
// (RFC 7515 §7.2.2) with a readable copy of the payload beside it. RFC 7515
// lets verifiers ignore the extra member; Verify checks it matches.
type Document struct {
	Protected   string          `json:"protected"`
	Payload     string          `json:"payload"`
	Signature   string          `json:"signature"`
	Certificate json.RawMessage `json:"certificate,omitempty"`
	// Log proves the certificate is in the transparency log.
	Log *LogProof `json:"log,omitempty"`
}

// LogProof places a certificate in the transparency log: its leaf index,
// the inclusion proof, and the signed checkpoint of the tree it was first
// included in. The leaf is translog.CertificateLeaf of the JWS.
type LogProof struct {
	Origin     string   `json:"origin"`
	Index      int64    `json:"index"`
	TreeSize   int64    `json:"tree_size"`
	Proof      []string `json:"inclusion_proof"`
	Checkpoint string   `json:"checkpoint"`
}

// JSON returns the document as indented JSON, for files and HTTP.
func (d Document) JSON() []byte {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		panic(err) // a Document always marshals
	}
	return append(b, '\n')
}

// ParseDocument reads a certificate file.
func ParseDocument(b []byte) (Document, error) {
	var d Document
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("not a certificate: %w", err)
	}
	if d.Protected == "" || d.Payload == "" || d.Signature == "" {
		return d, fmt.Errorf("not a certificate: protected, payload and signature are required")
	}
	return d, nil
}

type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
	// Crit is never set by Lethe; RFC 7515 §4.1.11 makes a verifier refuse
	// extensions it does not understand.
	Crit []string `json:"crit,omitempty"`
}

// b64 is base64url without padding, strict: a character with bits that
// decode to nothing is refused, so every character of a certificate counts.
var b64 = base64.RawURLEncoding.Strict()

// decodeB64 decodes one base64url part. Go's decoder skips CR and LF even
// in strict mode; no JWS part holds them, so they are refused as well.
func decodeB64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("line break in base64url")
	}
	return b64.DecodeString(s)
}

// Signer signs certificates with one Ed25519 key.
type Signer struct {
	key ed25519.PrivateKey
	jwk JWK
}

// NewSigner returns a signer for priv.
func NewSigner(priv ed25519.PrivateKey) *Signer {
	return &Signer{key: priv, jwk: PublicJWK(priv.Public().(ed25519.PublicKey))}
}

// KeyID is the key's RFC 7638 thumbprint.
func (s *Signer) KeyID() string { return s.jwk.Kid }

// PublicJWK is the public half, for the JWKS.
func (s *Signer) PublicJWK() JWK { return s.jwk }

// Sign signs p.
func (s *Signer) Sign(p Payload) (Document, error) {
	payload, err := canonicalJSON(p)
	if err != nil {
		return Document{}, err
	}
	hdr, err := canonicalJSON(header{Alg: "EdDSA", Kid: s.jwk.Kid, Typ: Type})
	if err != nil {
		return Document{}, err
	}
	d := Document{Protected: b64.EncodeToString(hdr), Payload: b64.EncodeToString(payload), Certificate: payload}
	d.Signature = b64.EncodeToString(ed25519.Sign(s.key, []byte(d.Protected+"."+d.Payload)))
	return d, nil
}

func canonicalJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return Canonicalize(b)
}

// VerifyCommitment reports whether email and nonce (as the person was given
// it) open the subject commitment of a certificate: proof that the
// certificate is about them, which holds even if the organisation's hash key
// leaks.
func VerifyCommitment(p Payload, email string, nonce []byte) bool {
	e, err := (erasure.Subject{Email: email}).Normalize()
	if err != nil || p.Subject.Commitment == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(erasure.Commit(nonce, e.Email)), []byte(p.Subject.Commitment)) == 1
}

// SchemaJSON is the JSON Schema (2020-12) of the payload, served at
// /v1/schemas/certificate-v1.json.
//
//go:embed schema/certificate-v1.schema.json
var SchemaJSON []byte
