package erasure

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/mail"
	"regexp"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Identifier kinds. A user id is always tied to the namespace (the system)
// that issued it, so its Kind is "user_ids.<namespace>" (see Kind);
// KindUserID is the stem of the older "user_id:<namespace>" spelling that
// keyed hashes are still computed over.
const (
	KindEmail  = "email"
	KindPhone  = "phone"
	KindUserID = "user_id"
)

// Limits on identifiers. They are generous for real data and small enough
// that nothing downstream has to worry about size.
const (
	maxEmailLen   = 254 // RFC 5321 path limit
	maxUserIDLen  = 256
	maxUserIDKeys = 32
)

var (
	phoneRe      = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	systemNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
)

// Subject is the person a request is about, as the identifiers the
// organisation's systems know them by. It is personal data: it must never be
// logged, put in a metric or written to a certificate.
type Subject struct {
	Email string `json:"email,omitempty"`
	// Phone in E.164 form, e.g. +447700900123.
	Phone string `json:"phone,omitempty"`
	// UserIDs maps a system name (a connector instance such as "shop-db")
	// to the person's id in that system.
	UserIDs map[string]string `json:"user_ids,omitempty"`
}

// Identifier is one (kind, value) pair of a Subject.
type Identifier struct {
	Kind  string
	Value string
}

// Normalize validates s and returns it in canonical form: a lower-cased
// email, a phone without separators. The error is an EInvalid *Error naming
// the field ("subject.email", …) at fault.
func (s Subject) Normalize() (Subject, error) {
	var out Subject
	if s.Email != "" {
		e, err := normalizeEmail(s.Email)
		if err != nil {
			return Subject{}, err
		}
		out.Email = e
	}
	if s.Phone != "" {
		p, err := normalizePhone(s.Phone)
		if err != nil {
			return Subject{}, err
		}
		out.Phone = p
	}
	if len(s.UserIDs) > maxUserIDKeys {
		return Subject{}, Invalid("subject.user_ids", "at most %d systems", maxUserIDKeys)
	}
	for sys, id := range s.UserIDs {
		if !systemNameRe.MatchString(sys) {
			return Subject{}, Invalid("subject.user_ids", "system name must be lower-case letters, digits, '-' or '_' (at most 63)")
		}
		field := "subject.user_ids." + sys
		id = strings.TrimSpace(id)
		switch {
		case id == "":
			return Subject{}, Invalid(field, "must not be empty")
		case len(id) > maxUserIDLen:
			return Subject{}, Invalid(field, "at most %d bytes", maxUserIDLen)
		case !printable(id):
			return Subject{}, Invalid(field, "must be printable text")
		}
		if out.UserIDs == nil {
			out.UserIDs = make(map[string]string, len(s.UserIDs))
		}
		out.UserIDs[sys] = id
	}
	if out.Email == "" && out.Phone == "" && len(out.UserIDs) == 0 {
		return Subject{}, Invalid("subject", "at least one identifier (email, phone or user_ids) is required")
	}
	return out, nil
}

// normalizeEmail reads an address the way it was meant: Unicode NFKC
// first, so that a full-width "ｂｏｂ＠example.com" typed on an East Asian
// keyboard is bob@example.com (and not a second person), then lower-cased.
// The result is what is validated, stored and hashed, so normalising it
// again changes nothing.
func normalizeEmail(raw string) (string, error) {
	const field = "subject.email"
	if !utf8.ValidString(raw) {
		return "", Invalid(field, "not a valid email address")
	}
	e := norm.NFKC.String(strings.ToLower(norm.NFKC.String(strings.TrimSpace(raw))))
	e = strings.TrimSpace(e)
	if len(e) > maxEmailLen {
		return "", Invalid(field, "at most %d characters", maxEmailLen)
	}
	if !printable(e) || strings.ContainsAny(e, " <>\"") {
		return "", Invalid(field, "not a valid email address")
	}
	addr, err := mail.ParseAddress(e)
	if err != nil || addr.Name != "" || addr.Address != e {
		return "", Invalid(field, "not a valid email address")
	}
	at := strings.LastIndexByte(e, '@')
	if at < 1 || !strings.Contains(e[at+1:], ".") || strings.HasSuffix(e, ".") {
		return "", Invalid(field, "not a valid email address")
	}
	return e, nil
}

func normalizePhone(raw string) (string, error) {
	p := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '(', ')', '.':
			return -1
		}
		return r
	}, strings.TrimSpace(norm.NFKC.String(raw))) // full-width digits are digits
	if strings.HasPrefix(p, "00") {
		p = "+" + p[2:]
	}
	if !phoneRe.MatchString(p) {
		return "", Invalid("subject.phone", "must be an international number such as +447700900123")
	}
	return p, nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// Identifiers lists s's identifiers in a stable order: email, phone, then
// user ids by system name.
func (s Subject) Identifiers() []Identifier {
	var ids []Identifier
	if s.Email != "" {
		ids = append(ids, Identifier{KindEmail, s.Email})
	}
	if s.Phone != "" {
		ids = append(ids, Identifier{KindPhone, s.Phone})
	}
	systems := make([]string, 0, len(s.UserIDs))
	for sys := range s.UserIDs {
		systems = append(systems, sys)
	}
	sort.Strings(systems)
	for _, sys := range systems {
		ids = append(ids, Identifier{string(UserIDKind(sys)), s.UserIDs[sys]})
	}
	return ids
}

// Values returns every identifier value, for redacting them out of text.
func (s Subject) Values() []string {
	ids := s.Identifiers()
	v := make([]string, len(ids))
	for i, id := range ids {
		v[i] = id.Value
	}
	return v
}

// Redact replaces every identifier of s found in text with "[redacted]".
// Connector errors may echo what they were sent; this keeps that out of logs
// and the store.
func (s Subject) Redact(text string) string { return RedactValues(text, s.Values()...) }

// RedactValues replaces every value found in text (ignoring case) with
// "[redacted]": for identifiers that are not (yet) in a Subject, such as
// those a resolver just found.
func RedactValues(text string, values ...string) string {
	for _, v := range values {
		if len(v) < 3 {
			continue
		}
		text = replaceFold(text, v, "[redacted]")
	}
	return text
}

// replaceFold replaces every case-insensitive occurrence of old in s.
func replaceFold(s, old, repl string) string {
	lower, lowerOld := strings.ToLower(s), strings.ToLower(old)
	if len(lower) != len(s) || !strings.Contains(lower, lowerOld) {
		return strings.ReplaceAll(s, old, repl)
	}
	var b strings.Builder
	for {
		i := strings.Index(lower, lowerOld)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(repl)
		s, lower = s[i+len(old):], lower[i+len(old):]
	}
}

// IdentifierHash is the keyed hash of one identifier: what certificates and
// logs carry instead of the identifier itself.
type IdentifierHash struct {
	Kind string `json:"kind"`
	Hash string `json:"hash"`
}

// SubjectRef references a subject without revealing it: the keyed hash of
// each identifier, and the id of the key used.
type SubjectRef struct {
	KeyID       string           `json:"key_id"`
	Identifiers []IdentifierHash `json:"identifiers"`
	// Commitment binds the email to a random nonce only the person is
	// given (see Commit), so they can prove a certificate is theirs even
	// if the organisation's hash key leaks. Empty without an email.
	Commitment string `json:"commitment,omitempty"`
}

// Commit returns the commitment to an email under nonce:
// "sha256:" + hex SHA-256("lethe-commitment/v1" 0x00 nonce 0x00 email).
func Commit(nonce []byte, email string) string {
	h := sha256.New()
	h.Write([]byte("lethe-commitment/v1\x00"))
	h.Write(nonce)
	h.Write([]byte{0})
	h.Write([]byte(email))
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Hasher computes keyed hashes (HMAC-SHA256 with an organisation secret) of
// normalised identifiers. Someone who knows an email can recompute its hash
// with the key; nobody can read the email back from the hash.
type Hasher struct {
	key   []byte
	keyID string
}

// NewHasher returns a Hasher for key, which must be at least 32 bytes.
func NewHasher(key []byte) (*Hasher, error) {
	if len(key) < 32 {
		return nil, Errorf(EInvalid, "subject hash key must be at least 32 bytes, got %d", len(key))
	}
	k := append([]byte(nil), key...)
	m := hmac.New(sha256.New, k)
	m.Write([]byte("lethe-subject-key-id"))
	return &Hasher{key: k, keyID: hex.EncodeToString(m.Sum(nil)[:8])}, nil
}

// KeyID names the key without revealing it.
func (h *Hasher) KeyID() string { return h.keyID }

// Hash returns the hex keyed hash of one normalised identifier. A user id
// kind may be written "user_ids.<ns>" or "user_id:<ns>": both give the
// same hash.
func (h *Hasher) Hash(kind, value string) string {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte("lethe-subject-v1\x00"))
	m.Write([]byte(hashKind(kind)))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil))
}

// Ref returns the reference for a normalised subject.
func (h *Hasher) Ref(s Subject) SubjectRef {
	ids := s.Identifiers()
	ref := SubjectRef{KeyID: h.keyID, Identifiers: make([]IdentifierHash, len(ids))}
	for i, id := range ids {
		ref.Identifiers[i] = IdentifierHash{Kind: id.Kind, Hash: h.Hash(id.Kind, id.Value)}
	}
	return ref
}

// DeriveKey returns a 32-byte key for another purpose (the portal's links
// and form tokens), derived from the hash key with label so that one
// secret serves both and neither reveals the other.
func (h *Hasher) DeriveKey(label string) []byte {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte("lethe-derived-key\x00" + label))
	return m.Sum(nil)
}
