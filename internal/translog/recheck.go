package translog

import (
	"encoding/json"
	"errors"
	"fmt"
)

// KindRecheck is the entry kind of a re-check of a certificate.
const KindRecheck = "recheck"

const recheckPrefix = "lethe-log/v1 recheck "

// Re-check outcomes, as the leaf states them.
const (
	// RecheckClean: the system was looked up by the person's identifiers
	// and held nothing.
	RecheckClean = "clean"
	// RecheckFound: the system held the person again; Records counts
	// what it held. A re-erasure follows.
	RecheckFound = "found"
	// RecheckReerased: the re-erasure that followed a found re-check is
	// done (Records: what it removed; -1 when the system gave no count).
	RecheckReerased = "re_erased"
	// RecheckNotChecked: the re-check could not be done (the look-up kept
	// failing, or the identifiers were already shredded); Note says why.
	RecheckNotChecked = "not_checked"
)

// RecheckSweep is the After of a leaf recorded by a scheduled sweep
// against the suppression list rather than a re-check at an age.
const RecheckSweep = "sweep"

// RecheckEvent is a later look at what a certificate attests: one
// system, looked up again at an age of the request. It names the
// certificate and the system, never the person.
type RecheckEvent struct {
	CertificateID string `json:"certificate_id"`
	Connector     string `json:"connector"`
	// After is the age of the request the re-check was for, as
	// configured ("72h"), or RecheckSweep.
	After   string `json:"after"`
	Outcome string `json:"outcome"`
	Records int64  `json:"records"`
	Note    string `json:"note,omitempty"`
	At      string `json:"at"` // RFC 3339
}

// RecheckLeaf is the leaf data of a re-check: canonical JSON (fixed,
// sorted ASCII keys) behind a prefix.
func RecheckLeaf(e RecheckEvent) ([]byte, error) {
	switch e.Outcome {
	case RecheckClean, RecheckFound, RecheckReerased, RecheckNotChecked:
	default:
		return nil, fmt.Errorf("translog: unknown re-check outcome %q", e.Outcome)
	}
	if e.CertificateID == "" || e.Connector == "" || e.After == "" || e.At == "" {
		return nil, errors.New("translog: a re-check names its certificate, connector, age and time")
	}
	b, err := json.Marshal(struct {
		After         string `json:"after"`
		At            string `json:"at"`
		CertificateID string `json:"certificate_id"`
		Connector     string `json:"connector"`
		Note          string `json:"note,omitempty"`
		Outcome       string `json:"outcome"`
		Records       int64  `json:"records"`
	}{e.After, e.At, e.CertificateID, e.Connector, e.Note, e.Outcome, e.Records})
	if err != nil {
		return nil, err
	}
	return append(append([]byte(recheckPrefix), b...), '\n'), nil
}

// ParseRecheckLeaf reads a re-check back from its leaf data.
func ParseRecheckLeaf(data []byte) (RecheckEvent, error) {
	var e RecheckEvent
	if len(data) < len(recheckPrefix) || string(data[:len(recheckPrefix)]) != recheckPrefix {
		return e, errors.New("translog: not a re-check leaf")
	}
	if err := json.Unmarshal(data[len(recheckPrefix):], &e); err != nil {
		return e, fmt.Errorf("translog: re-check leaf: %w", err)
	}
	return e, nil
}
