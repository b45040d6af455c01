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

// Payload schema versions. Version 2 (issued now) adds what each system
// was searched by and where those identifiers came from, the resolvers'
// look-ups, systems not applicable to the person with the reason, record
// counts that may be "unknown", and the deadline before an extension with
// the kind of reason. Verifiers accept both.
const (
	SchemaV1 = "https://lethe.dev/schemas/certificate/v1"
	SchemaV2 = "https://lethe.dev/schemas/certificate/v2"
)

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
	Outcome    string `json:"outcome"`
	ReceivedAt string `json:"received_at"`
	// DueAt is the deadline the request was completed against: the
	// extended one, when it was extended.
	DueAt string `json:"due_at"`
	// OriginalDueAt (v2) is the deadline the request was received with.
	OriginalDueAt string `json:"original_due_at,omitempty"`
	// Extension (v2) says when and on what kind of reason the deadline
	// was extended; absent when it was not.
	Extension   *Extension `json:"extension,omitempty"`
	CompletedAt string     `json:"completed_at"`
	IssuedAt    string     `json:"issued_at"`
	DeadlineMet bool       `json:"deadline_met"`
	// Identifiers (v2) lists the kinds of identifier the request ended
	// with and where each came from: the request, a resolver, staff.
	Identifiers []erasure.Source `json:"identifiers,omitempty"`
	// Resolution (v2) lists the look-ups that found the person's other
	// identifiers before anything was erased.
	Resolution []Lookup `json:"resolution,omitempty"`
	Systems    []System `json:"systems"`
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
	// NotApplicable (v2) lists the systems declared not applicable to the
	// person, with the reason.
	NotApplicable []NotApplicable `json:"not_applicable,omitempty"`
}

// Extension is a deadline extension (v2).
type Extension struct {
	ExtendedAt string `json:"extended_at"`
	// Category is the kind of reason (erasure.ExtensionCategories) and
	// Basis its description; the reason's own words stay in the event log.
	Category string `json:"category"`
	Basis    string `json:"basis"`
}

// Lookup is one resolver's look-up (v2).
type Lookup struct {
	Connector string `json:"connector"`
	Type      string `json:"type"`
	// Outcome is resolved (looked up; Found lists what it supplied,
	// possibly nothing) or not_applicable (not looked up; Reason says why).
	Outcome string `json:"outcome"`
	// LookedUpBy are the kinds it looked the person up by, with their source.
	LookedUpBy     []erasure.Source   `json:"looked_up_by"`
	Found          []erasure.Kind     `json:"found"`
	Reason         string             `json:"reason,omitempty"`
	Attempts       int                `json:"attempts"`
	CompletedAt    string             `json:"completed_at"`
	Evidence       []erasure.Evidence `json:"evidence"`
	EvidenceDigest string             `json:"evidence_digest"`
}

// NotApplicable is a system that holds nothing of the person, as staff or
// the configuration decided (v2).
type NotApplicable struct {
	Connector string `json:"connector"`
	Reason    string `json:"reason"`
}

// Records is how many records a system erased, or unknown when the system
// confirmed the erasure without a count (a vendor's deletion job). It is
// written as a number, or as the string "unknown" (v2 only).
type Records struct {
	N       int64
	Unknown bool
}

// MarshalJSON implements json.Marshaler.
func (r Records) MarshalJSON() ([]byte, error) {
	if r.Unknown {
		return []byte(`"unknown"`), nil
	}
	return json.Marshal(r.N)
}

// UnmarshalJSON implements json.Unmarshaler.
func (r *Records) UnmarshalJSON(b []byte) error {
	if string(b) == `"unknown"` {
		*r = Records{Unknown: true}
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New(`records_erased must be a count or "unknown"`)
	}
	*r = Records{N: n}
	return nil
}

func (r Records) String() string {
	switch {
	case r.Unknown:
		return "an unknown number of records (the system gave no count)"
	case r.N == 1:
		return "1 record"
	}
	return fmt.Sprintf("%d records", r.N)
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
	s += "Each system was searched only by the kinds of identifier listed under searched_by, which came from where shown: " +
		"not_found means it was searched by those and held nothing; records_erased \"unknown\" means the system confirmed the erasure " +
		"without saying what it removed; not_applicable means the system was not searched for the reason given. "
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
	Connector string `json:"connector"`
	Type      string `json:"type"`
	// Outcome is erased, not_found, exempted or (v2) not_applicable.
	Outcome       string  `json:"outcome"`
	RecordsErased Records `json:"records_erased"`
	// SearchedBy (v2): the kinds of identifier the system was searched
	// by, and where each came from.
	SearchedBy  []erasure.Source `json:"searched_by,omitempty"`
	Attempts    int              `json:"attempts"`
	CompletedAt string           `json:"completed_at"`
	// Verification is "clean" when a lookup after erasure found nothing,
	// "not_available" when the system offers no lookup, "lookup_failed"
	// when the lookup kept failing after the erasure succeeded.
	Verification   string             `json:"verification"`
	Evidence       []erasure.Evidence `json:"evidence"`
	EvidenceDigest string             `json:"evidence_digest"`
	ExemptionBasis string             `json:"exemption_basis,omitempty"`
	// NotApplicableReason (v2) says why the system was not searched.
	NotApplicableReason string `json:"not_applicable_reason,omitempty"`
}

func timeText(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// NewPayload describes a completed request (schema v2). It uses the
// subject reference and the kinds of identifier, never the identifiers,
// and refuses tasks that are not done and a request whose status is not
// the one its tasks imply.
func NewPayload(req erasure.Request, tasks []erasure.Task, opt Options, eventLogHead string, issuedAt time.Time) (Payload, error) {
	if len(tasks) == 0 {
		return Payload{}, fmt.Errorf("certificate: request %s has no tasks", req.ID)
	}
	p := Payload{
		Schema: SchemaV2, CertificateID: erasure.NewID(), RequestID: req.ID, Issuer: opt.Issuer, Retained: []Retained{},
		Jurisdiction: string(req.Jurisdiction), Subject: req.SubjectRef, Outcome: string(req.Status),
		ReceivedAt: timeText(req.ReceivedAt), DueAt: timeText(req.DueAt), OriginalDueAt: timeText(req.FirstDueAt()),
		CompletedAt: timeText(req.CompletedAt), IssuedAt: timeText(issuedAt), DeadlineMet: !req.CompletedAt.After(req.DueAt),
		EventLogHead: eventLogHead, Identifiers: publicSources(req.Sources.List()),
	}
	if !req.ExtendedAt.IsZero() {
		basis, _ := req.Jurisdiction.ExtensionCategory(req.ExtensionCategory)
		p.Extension = &Extension{ExtendedAt: timeText(req.ExtendedAt), Category: req.ExtensionCategory, Basis: basis}
	}
	if p.Subject.Identifiers == nil {
		p.Subject.Identifiers = []erasure.IdentifierHash{}
	}
	from := func(kinds []erasure.Kind) []erasure.Source {
		out := make([]erasure.Source, len(kinds))
		for i, k := range kinds {
			out[i] = erasure.Source{Kind: k, From: req.Sources[k]}
		}
		return publicSources(out)
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
		if t.Phase == erasure.PhaseResolve {
			found := t.Found
			if found == nil {
				found = []erasure.Kind{}
			}
			p.Resolution = append(p.Resolution, Lookup{
				Connector: t.Connector, Type: t.ConnectorType, Outcome: string(t.Status), LookedUpBy: from(t.SearchedBy),
				Found: found, Reason: t.Reason, Attempts: t.Attempt, CompletedAt: timeText(t.CompletedAt),
				Evidence: ev, EvidenceDigest: digest,
			})
			continue
		}
		verification := t.Verified
		if verification == "" {
			verification = "not_available"
		}
		basis := t.ExemptionBasis
		if d, ok := req.Jurisdiction.ExemptionBasis(basis); ok {
			basis = d
		}
		s := System{
			Connector: t.Connector, Type: t.ConnectorType, Outcome: string(t.Status),
			RecordsErased: Records{N: t.RecordsErased, Unknown: t.RecordsUnknown && t.Status == erasure.TaskErased},
			Attempts:      t.Attempt, CompletedAt: timeText(t.CompletedAt), Verification: verification,
			Evidence: ev, EvidenceDigest: digest, ExemptionBasis: basis,
		}
		if t.Status == erasure.TaskErased || t.Status == erasure.TaskNotFound {
			s.SearchedBy = from(t.SearchedBy)
		}
		if t.Status == erasure.TaskNotApplicable {
			s.NotApplicableReason = t.Reason
			s.Verification = "not_available"
		}
		p.Systems = append(p.Systems, s)
	}
	if len(p.Systems) == 0 {
		return Payload{}, fmt.Errorf("certificate: request %s has no erasure tasks", req.ID)
	}
	if want := erasure.Aggregate(tasks); req.Status != want {
		return Payload{}, fmt.Errorf("certificate: request %s is %s, but its tasks make it %s", req.ID, req.Status, want)
	}
	sort.Slice(p.Systems, func(i, j int) bool { return p.Systems[i].Connector < p.Systems[j].Connector })
	sort.Slice(p.Resolution, func(i, j int) bool { return p.Resolution[i].Connector < p.Resolution[j].Connector })
	for _, s := range p.Systems {
		switch s.Outcome {
		case string(erasure.TaskExempted):
			p.Retained = append(p.Retained, Retained{Connector: s.Connector, Basis: s.ExemptionBasis})
		case string(erasure.TaskNotApplicable):
			p.NotApplicable = append(p.NotApplicable, NotApplicable{Connector: s.Connector, Reason: s.NotApplicableReason})
		}
	}
	if opt.BackupRetention > 0 {
		p.BackupPurgeBy = req.CompletedAt.Add(opt.BackupRetention).UTC().Format(time.DateOnly)
	}
	p.Statement = statement(p)
	return p, nil
}

// publicSources says "staff" for identifiers staff added, without naming
// the member of staff: certificates are public, the event log says who.
func publicSources(ss []erasure.Source) []erasure.Source {
	for i := range ss {
		if strings.HasPrefix(ss[i].From, "staff:") {
			ss[i].From = "staff"
		}
	}
	return ss
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

// UnverifiedPayload reads what the certificate claims without checking its
// signature or log proof: for showing a certificate Lethe itself issued
// and holds (the person's view of it), never for deciding whether one is
// genuine (Verify does that).
func (d Document) UnverifiedPayload() (Payload, error) {
	b, err := decodeB64(d.Payload)
	if err != nil {
		return Payload{}, fmt.Errorf("certificate payload: %w", err)
	}
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil {
		return Payload{}, fmt.Errorf("certificate payload: %w", err)
	}
	return p, nil
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

// SchemaJSON and SchemaV2JSON are the JSON Schemas (2020-12) of the
// payload's versions, served at /v1/schemas/certificate-v1.json and
// /v1/schemas/certificate-v2.json.
//
//go:embed schema/certificate-v1.schema.json
var SchemaJSON []byte

// SchemaV2JSON is the JSON Schema of version 2.
//
//go:embed schema/certificate-v2.schema.json
var SchemaV2JSON []byte
