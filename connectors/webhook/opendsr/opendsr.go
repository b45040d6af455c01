// Package opendsr is the part of the OpenDSR 2.0 wire format that the
// webhook connector and its fake processor both speak: the create request
// with its identities, and the callback headers. What each side makes of
// it (checks, answers, statuses) stays with that side.
package opendsr

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
)

// Callback headers of OpenDSR.
const (
	HeaderDomain    = "X-OpenDSR-Processor-Domain"
	HeaderSignature = "X-OpenDSR-Signature"
	// HeaderTimestamp is Lethe's addition to OpenDSR 2.0, whose signature
	// covers the body alone: the Unix time of sending, signed with the
	// body as "<timestamp>.<body>", so a captured callback goes stale
	// (docs/connectors/webhook.md).
	HeaderTimestamp = "X-Lethe-Timestamp"
)

// Identity is one entry of subject_identities.
type Identity struct {
	Type   string `json:"identity_type"`
	Value  string `json:"identity_value"`
	Format string `json:"identity_format"`
}

// CreateRequest is the body of POST /requests.
type CreateRequest struct {
	SubjectRequestID   string     `json:"subject_request_id"`
	SubjectRequestType string     `json:"subject_request_type"`
	Regulation         string     `json:"regulation"`
	SubjectIdentities  []Identity `json:"subject_identities"`
	SubmittedTime      string     `json:"submitted_time"`
	APIVersion         string     `json:"api_version"`
	StatusCallbackURLs []string   `json:"status_callback_urls"`
}

// IsRequestID reports whether id is a subject_request_id as OpenDSR 2.0
// requires it: a UUID of version 4, in lower case.
func IsRequestID(id string) bool { return requestIDRe.MatchString(id) }

var requestIDRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// SHA256 is v in identity_format sha256: its hex SHA-256.
func SHA256(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}
