package erasure

import (
	"sort"
	"strings"
	"time"
)

// Jurisdiction names the law a request is made under; it sets the deadline.
type Jurisdiction string

// Supported jurisdictions.
const (
	GDPR Jurisdiction = "gdpr"
	CCPA Jurisdiction = "ccpa"
)

// Jurisdictions lists every supported jurisdiction.
var Jurisdictions = []Jurisdiction{GDPR, CCPA}

// ParseJurisdiction validates a jurisdiction name (case-insensitive).
func ParseJurisdiction(s string) (Jurisdiction, error) {
	j := Jurisdiction(strings.ToLower(strings.TrimSpace(s)))
	switch j {
	case GDPR, CCPA:
		return j, nil
	case "":
		return "", Invalid("jurisdiction", "is required: one of gdpr, ccpa")
	}
	return "", Invalid("jurisdiction", "unknown jurisdiction; one of gdpr, ccpa")
}

// DueDate is the legal deadline for a request received at t.
//
// GDPR Art. 12(3): one month. Periods in months follow Regulation 1182/71
// Art. 3(2)(c): the period ends on the same date of the next month, or on
// that month's last day when it has no such date (31 January → 28/29
// February). CCPA § 1798.130: 45 calendar days.
func (j Jurisdiction) DueDate(t time.Time) time.Time {
	switch j {
	case CCPA:
		return t.AddDate(0, 0, 45)
	default:
		return addMonths(t, 1)
	}
}

// MaxExtension is how far the deadline may be pushed once, with a reason:
// GDPR two further months, CCPA another 45 days.
func (j Jurisdiction) MaxExtension(due time.Time) time.Time {
	switch j {
	case CCPA:
		return due.AddDate(0, 0, 45)
	default:
		return addMonths(due, 2)
	}
}

// addMonths adds n calendar months, clamping to the last day of the target
// month instead of overflowing into the next one as time.AddDate does.
func addMonths(t time.Time, n int) time.Time {
	y, m, d := t.Date()
	first := time.Date(y, m+time.Month(n), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	last := first.AddDate(0, 1, -1).Day()
	if d > last {
		d = last
	}
	return time.Date(first.Year(), first.Month(), d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
}

// ExtensionCategories are the kinds of reason a deadline may be extended
// for, as the certificate records them (the reason's own words, told to
// the person, stay in the event log): GDPR Art. 12(3) allows it "taking
// into account the complexity and number of the requests"; CCPA
// § 1798.130(a)(2) "when reasonably necessary".
var ExtensionCategories = map[Jurisdiction]map[string]string{
	GDPR: {
		"complexity":         "Art. 12(3): the complexity of the request",
		"number_of_requests": "Art. 12(3): the number of requests",
	},
	CCPA: {
		"reasonably_necessary": "§ 1798.130(a)(2): reasonably necessary",
	},
}

// ExtensionCategory returns the description of an extension category, and
// whether the jurisdiction allows it.
func (j Jurisdiction) ExtensionCategory(code string) (string, bool) {
	d, ok := ExtensionCategories[j][code]
	return d, ok
}

// ExtensionCodes lists a jurisdiction's extension categories, sorted.
func (j Jurisdiction) ExtensionCodes() []string {
	var out []string
	for c := range ExtensionCategories[j] {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}
