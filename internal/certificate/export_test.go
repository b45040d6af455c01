package certificate

import "github.com/lethe-dev/lethe/internal/erasure"

// EvidenceDigest is evidenceDigest for tests that rebuild payloads.
func EvidenceDigest(ev []erasure.Evidence) string {
	d, _ := evidenceDigest(ev)
	return d
}
