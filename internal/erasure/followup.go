package erasure

import (
	"fmt"
	"strings"
	"time"
)

// Follow-ups are tasks of a request that is already completed: a re-check
// looks the person up again in one system at a set age of the request
// (connectors' recheck_after), and when it finds them, a re-erasure
// erases them again. Their phase names the kind and the age,
// "recheck:72h" or "reerase:72h", so that a request has at most one of
// each per system and age. They never change the request's status or its
// certificate: each outcome is an event and a transparency-log leaf of its
// own that names the certificate.
const (
	phaseRecheck = "recheck:"
	phaseReerase = "reerase:"
)

// RecheckPhase is the phase of the re-check at age after.
func RecheckPhase(after time.Duration) string { return phaseRecheck + FormatAge(after) }

// ReerasePhase is the phase of the re-erasure a re-check at age after
// started.
func ReerasePhase(after time.Duration) string { return phaseReerase + FormatAge(after) }

// FormatAge writes a re-check age the way the config does: "72h",
// "90m", "1h30m".
func FormatAge(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	if s == "" {
		return "0s"
	}
	return s
}

// FollowUp says what kind of follow-up t is ("recheck" or "reerase") and
// at which age of the request; ok is false for a resolve or erase task.
func (t Task) FollowUp() (kind string, after time.Duration, ok bool) {
	for _, p := range []string{phaseRecheck, phaseReerase} {
		if rest, found := strings.CutPrefix(t.Phase, p); found {
			d, err := time.ParseDuration(rest)
			if err != nil {
				return "", 0, false
			}
			return strings.TrimSuffix(p, ":"), d, true
		}
	}
	return "", 0, false
}

// IsRecheck reports whether t is a re-check.
func (t Task) IsRecheck() bool { return strings.HasPrefix(t.Phase, phaseRecheck) }

// IsReerase reports whether t is a re-erasure started by a re-check.
func (t Task) IsReerase() bool { return strings.HasPrefix(t.Phase, phaseReerase) }

// AgeDay describes a re-check age for people: "day 3", "day 30", or the
// age itself below a day ("2h").
func AgeDay(after time.Duration) string {
	if after < 24*time.Hour {
		return FormatAge(after)
	}
	return fmt.Sprintf("day %d", int(after/(24*time.Hour)))
}
