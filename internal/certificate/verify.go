package certificate

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/receipt"
	"github.com/lethe-dev/lethe/internal/translog"
)

// Verified is a certificate that passed Verify.
type Verified struct {
	Payload Payload
	KeyID   string
	// Log is where the certificate stands in the transparency log.
	Log LogPosition
	// Receipts are the processors' signed completions the certificate
	// carries, each verified, by connector.
	Receipts map[string]receipt.Attested
}

// LogPosition is a verified place in the transparency log.
type LogPosition struct {
	Origin     string
	Index      int64
	Checkpoint translog.Checkpoint
	// SignedCheckpoint is the checkpoint note as the certificate carries it.
	SignedCheckpoint []byte
}

// Verify checks a certificate file against a key set: the header, the key,
// the Ed25519 signature, that the payload is in canonical form, that the
// readable copy (if any) says the same as the signed payload, that the
// payload is well formed, and that the certificate is in the transparency
// log: the inclusion proof leads to the root of a checkpoint signed by a key
// in the set. The error says, for a person, what is wrong.
func Verify(doc []byte, keys JWKS) (Verified, error) {
	return VerifyFor(doc, keys, "")
}

// VerifyFor is Verify with the log's origin pinned: a certificate placed in
// another log is refused. An empty origin accepts the certificate's.
func VerifyFor(doc []byte, keys JWKS, origin string) (Verified, error) {
	d, err := ParseDocument(doc)
	if err != nil {
		return Verified{}, err
	}
	hdrJSON, err := decodeB64(d.Protected)
	if err != nil {
		return Verified{}, errors.New("the protected header is not base64url")
	}
	var h header
	if err := json.Unmarshal(hdrJSON, &h); err != nil {
		return Verified{}, errors.New("the protected header is not JSON")
	}
	if h.Alg != "EdDSA" {
		return Verified{}, fmt.Errorf("the algorithm is %q; Lethe certificates are signed with EdDSA only", h.Alg)
	}
	if h.Typ != Type {
		return Verified{}, fmt.Errorf("the type is %q, not a Lethe certificate", h.Typ)
	}
	if len(h.Crit) > 0 {
		return Verified{}, fmt.Errorf("the header marks %q as critical; Lethe certificates use no header extensions", h.Crit)
	}
	if h.Kid == "" {
		return Verified{}, errors.New("the header names no key id")
	}
	pub, ok := keys.Key(h.Kid)
	if !ok {
		return Verified{}, fmt.Errorf("key id %s is not in the key set: the certificate was signed by a key you do not trust", h.Kid)
	}
	sig, err := decodeB64(d.Signature)
	if err != nil {
		return Verified{}, errors.New("the signature is not base64url")
	}
	if !ed25519.Verify(pub, []byte(d.Protected+"."+d.Payload), sig) {
		return Verified{}, errors.New("signature does not match: the certificate was altered or signed by another key")
	}
	payload, err := decodeB64(d.Payload)
	if err != nil {
		return Verified{}, errors.New("the payload is not base64url")
	}
	canon, err := Canonicalize(payload)
	if err != nil || !bytes.Equal(canon, payload) {
		return Verified{}, errors.New("the signed payload is not canonical JSON (RFC 8785)")
	}
	if len(d.Certificate) > 0 {
		readable, err := Canonicalize(d.Certificate)
		if err != nil || !bytes.Equal(readable, payload) {
			return Verified{}, errors.New("readable copy differs from the signed payload: it was edited; trust only the signed payload")
		}
	}
	// The schema first: a newer certificate should say so, not fail on
	// the first member this version does not know.
	var version struct {
		Schema string `json:"schema"`
	}
	if err := json.Unmarshal(payload, &version); err != nil {
		return Verified{}, fmt.Errorf("the payload is not a JSON object: %w", err)
	}
	if version.Schema != SchemaV1 && version.Schema != SchemaV2 {
		return Verified{}, fmt.Errorf("unknown certificate schema %q: this verifier reads %s and %s", version.Schema, SchemaV1, SchemaV2)
	}
	var p Payload
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Verified{}, fmt.Errorf("the payload does not follow the certificate schema: %w", err)
	}
	if err := p.check(); err != nil {
		return Verified{}, err
	}
	receipts, err := p.receipts()
	if err != nil {
		return Verified{}, err
	}
	pos, err := verifyLog(d, keys, origin)
	if err != nil {
		return Verified{}, err
	}
	return Verified{Payload: p, KeyID: h.Kid, Log: pos, Receipts: receipts}, nil
}

// receipts checks every processor receipt in the systems' evidence: the
// processor's signature, and that it attests the completion of the
// request the system's evidence names. A system has at most one.
func (p Payload) receipts() (map[string]receipt.Attested, error) {
	out := map[string]receipt.Attested{}
	for _, s := range p.Systems {
		requestID := ""
		for _, ev := range s.Evidence {
			if ev.Kind == "subject_request_id" {
				requestID = ev.Value
			}
		}
		for _, ev := range s.Evidence {
			if ev.Kind != receipt.Kind {
				continue
			}
			if _, dup := out[s.Connector]; dup {
				return nil, fmt.Errorf("system %s carries two processor receipts", s.Connector)
			}
			a, err := receipt.Check(ev.Value)
			switch {
			case err != nil:
				return nil, fmt.Errorf("system %s: %w", s.Connector, err)
			case a.Status != "completed":
				return nil, fmt.Errorf("system %s: the processor's receipt says %q, not completed", s.Connector, a.Status)
			case s.Outcome != "erased" && s.Outcome != "not_found":
				return nil, fmt.Errorf("system %s: a processor receipt on a system that was %s", s.Connector, s.Outcome)
			case requestID == "" || !strings.EqualFold(a.RequestID, requestID):
				return nil, fmt.Errorf("system %s: the processor's receipt is for another request than the system's", s.Connector)
			}
			out[s.Connector] = a
		}
	}
	return out, nil
}

func verifyLog(d Document, keys JWKS, origin string) (LogPosition, error) {
	l := d.Log
	if l == nil {
		return LogPosition{}, errors.New("the certificate carries no transparency log proof: it cannot be shown to have been published")
	}
	if origin != "" && l.Origin != origin {
		return LogPosition{}, fmt.Errorf("the certificate is in log %q, not %q", l.Origin, origin)
	}
	cp, _, err := translog.OpenCheckpoint([]byte(l.Checkpoint), l.Origin, keys.PublicKeys())
	if err != nil {
		return LogPosition{}, fmt.Errorf("log checkpoint: %w", err)
	}
	if cp.Size != l.TreeSize {
		return LogPosition{}, fmt.Errorf("the proof is for a tree of %d, the checkpoint for %d", l.TreeSize, cp.Size)
	}
	leaf := translog.CertificateLeaf(d.Protected, d.Payload, d.Signature)
	if err := translog.VerifyInclusion(translog.InclusionProof{Index: l.Index, TreeSize: l.TreeSize, Hashes: l.Proof}, leaf, cp.Root); err != nil {
		return LogPosition{}, err
	}
	return LogPosition{Origin: l.Origin, Index: l.Index, Checkpoint: cp, SignedCheckpoint: []byte(l.Checkpoint)}, nil
}

func (p Payload) check() error {
	if p.RequestID == "" || p.CertificateID == "" {
		return errors.New("the payload lacks a request or certificate id")
	}
	times := map[string]string{"received_at": p.ReceivedAt, "due_at": p.DueAt, "completed_at": p.CompletedAt, "issued_at": p.IssuedAt}
	v2 := p.Schema == SchemaV2
	if v2 {
		times["original_due_at"] = p.OriginalDueAt
		if p.Extension != nil {
			times["extension.extended_at"] = p.Extension.ExtendedAt
		}
	} else if p.OriginalDueAt != "" || p.Extension != nil || p.Identifiers != nil || p.Resolution != nil || p.NotApplicable != nil {
		return errors.New("the payload says schema v1 but holds members of v2")
	}
	for name, v := range times {
		if _, err := time.Parse(time.RFC3339, v); err != nil {
			return fmt.Errorf("the payload's %s is not a time", name)
		}
	}
	if v2 && p.Extension == nil && p.OriginalDueAt != p.DueAt {
		return errors.New("the deadline differs from the original one but no extension is recorded")
	}
	if len(p.Systems) == 0 {
		return errors.New("the payload lists no systems")
	}
	outcome := erasure.RequestCompleted
	for _, s := range p.Systems {
		switch s.Outcome {
		case "erased", "not_found":
		case "exempted":
			outcome = erasure.RequestCompletedWithExemptions
		case "not_applicable":
			if !v2 || s.NotApplicableReason == "" {
				return fmt.Errorf("system %s is not applicable without a reason (or in a v1 certificate)", s.Connector)
			}
		default:
			return fmt.Errorf("system %s has outcome %q, which does not finish an erasure", s.Connector, s.Outcome)
		}
		if s.RecordsErased.Unknown && (!v2 || s.Outcome != "erased") {
			return fmt.Errorf("system %s: an unknown record count belongs to an erasure (in a v2 certificate) only", s.Connector)
		}
		if s.RecordsErased.N < 0 {
			return fmt.Errorf("system %s: a negative record count", s.Connector)
		}
		if d, err := evidenceDigest(s.Evidence); err != nil || d != s.EvidenceDigest {
			return fmt.Errorf("system %s: the evidence does not match its digest", s.Connector)
		}
	}
	for _, l := range p.Resolution {
		if l.Outcome != "resolved" && l.Outcome != "not_applicable" {
			return fmt.Errorf("look-up by %s has outcome %q", l.Connector, l.Outcome)
		}
		if d, err := evidenceDigest(l.Evidence); err != nil || d != l.EvidenceDigest {
			return fmt.Errorf("look-up by %s: the evidence does not match its digest", l.Connector)
		}
	}
	if p.Outcome != string(outcome) {
		return fmt.Errorf("the outcome is %q but the systems add up to %q", p.Outcome, outcome)
	}
	return nil
}

// Summary describes a verified certificate in plain language.
func (v Verified) Summary() string {
	p := v.Payload
	var b strings.Builder
	deadline := "deadline met"
	if !p.DeadlineMet {
		deadline = "DEADLINE MISSED"
	}
	kinds := make([]string, 0, len(p.Subject.Identifiers))
	for _, id := range p.Subject.Identifiers {
		kinds = append(kinds, id.Kind)
	}
	fmt.Fprintf(&b, "Erasure certificate %s\n", p.CertificateID)
	fmt.Fprintf(&b, "  Request       %s\n", p.RequestID)
	fmt.Fprintf(&b, "  Issuer        %s\n", p.Issuer)
	fmt.Fprintf(&b, "  Jurisdiction  %s\n", strings.ToUpper(p.Jurisdiction))
	fmt.Fprintf(&b, "  Subject       keyed hashes of %s (hash key %s)\n", strings.Join(kinds, ", "), p.Subject.KeyID)
	fmt.Fprintf(&b, "  Received      %s\n", p.ReceivedAt)
	if p.Extension != nil {
		fmt.Fprintf(&b, "  Due           %s, extended on %s from %s (%s)\n", p.DueAt, p.Extension.ExtendedAt, p.OriginalDueAt, p.Extension.Basis)
	} else {
		fmt.Fprintf(&b, "  Due           %s\n", p.DueAt)
	}
	fmt.Fprintf(&b, "  Completed     %s (%s)\n", p.CompletedAt, deadline)
	fmt.Fprintf(&b, "  Outcome       %s\n", p.Outcome)
	fmt.Fprintf(&b, "  Signed by     key %s\n", v.KeyID)
	fmt.Fprintf(&b, "  Event log     head %s\n", p.EventLogHead)
	fmt.Fprintf(&b, "  Transparency  leaf %d of log %s, in its checkpoint of %d entries signed %s\n",
		v.Log.Index, v.Log.Origin, v.Log.Checkpoint.Size, v.Log.Checkpoint.Time.Format(time.RFC3339))
	if p.BackupPurgeBy != "" {
		fmt.Fprintf(&b, "  Backups       purged by %s\n", p.BackupPurgeBy)
	}
	if len(p.Identifiers) > 0 {
		fmt.Fprintf(&b, "Identifiers used (kinds only): %s\n", sourcesText(p.Identifiers))
	}
	if len(p.Resolution) > 0 {
		fmt.Fprintf(&b, "Look-ups before erasure (%d):\n", len(p.Resolution))
		for _, l := range p.Resolution {
			what := "found nothing more"
			if len(l.Found) > 0 {
				parts := make([]string, len(l.Found))
				for i, k := range l.Found {
					parts[i] = string(k)
				}
				what = "supplied " + strings.Join(parts, ", ")
			}
			if l.Outcome == "not_applicable" {
				what = "not looked up: " + l.Reason
			}
			fmt.Fprintf(&b, "  %s (%s): looked up by %s, %s\n", l.Connector, l.Type, sourcesText(l.LookedUpBy), what)
		}
	}
	fmt.Fprintf(&b, "Systems (%d):\n", len(p.Systems))
	for _, s := range p.Systems {
		var what string
		switch s.Outcome {
		case "erased":
			what = "erased " + s.RecordsErased.String()
		case "not_found":
			what = "searched and held nothing"
		case "exempted":
			what = "kept under " + s.ExemptionBasis
		case "not_applicable":
			what = "not searched, not applicable: " + s.NotApplicableReason
		}
		if len(s.SearchedBy) > 0 {
			what += " (searched by " + sourcesText(s.SearchedBy) + ")"
		} else if p.Schema == SchemaV1 && s.Outcome == "not_found" {
			what += " (v1 certificate: the identifiers searched by are not recorded)"
		}
		check := "no lookup available"
		switch s.Verification {
		case "clean":
			check = "verified clean by a lookup afterwards"
		case "lookup_failed":
			check = "the lookup afterwards failed"
		}
		fmt.Fprintf(&b, "  %s (%s): %s, %s, %d attempt(s), done %s\n", s.Connector, s.Type, what, check, s.Attempts, s.CompletedAt)
		if a, ok := v.Receipts[s.Connector]; ok {
			signed := "(signature over the body only, not dated)"
			if !a.SignedAt.IsZero() {
				signed = "signed " + a.SignedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(&b, "    the processor itself attested completion (key %s, %s)\n", a.Kid, signed)
		}
	}
	return b.String()
}

// sourcesText writes kinds with where they came from: "email (request),
// user_ids.app (shop-db)".
func sourcesText(ss []erasure.Source) string {
	if len(ss) == 0 {
		return "nothing"
	}
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = fmt.Sprintf("%s (%s)", s.Kind, s.From)
	}
	return strings.Join(parts, ", ")
}
