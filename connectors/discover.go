package connectors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Discoverer is implemented by connectors that can read their system's
// layout (a database's catalogue, a bucket's keys) and say where it holds
// personal data, and whether the instance's erasure rules reach each place.
// `lethe discover` prints the report; `lethe serve` can run it on a schedule
// and shows it as the data map.
//
// A report never holds sampled values: only the names of places (tables,
// columns, key prefixes), counts and the kind of data detected.
type Discoverer interface {
	// Discover reads the system and reports every place that looks like it
	// holds personal data. It calls progress now and then on long scans
	// (progress may be nil).
	Discover(ctx context.Context, progress func(DiscoveryProgress)) (Coverage, error)
}

// DiscoveryProgress says how far a discovery has got.
type DiscoveryProgress struct {
	// Done and Total count the units read (tables, key pages); Total is
	// zero when unknown.
	Done, Total int
	// Unit names what is counted: "tables", "keys".
	Unit string
}

// DataKind is the kind of personal data a place was seen to hold.
type DataKind string

// Kinds of personal data discovery detects.
const (
	DataEmail DataKind = "email"
	DataPhone DataKind = "phone"
	DataIP    DataKind = "ip_address"
	// DataName is detected by the column's name (first_name, full_name…).
	DataName DataKind = "name"
	// DataFreeText is free text with email addresses in it.
	DataFreeText DataKind = "free_text_with_email"
	// DataReference is a column that refers to a place holding personal
	// data (a foreign key to a covered customers row).
	DataReference DataKind = "reference"
	// DataIdentifierPath is a file path or object key with an identifier
	// in it.
	DataIdentifierPath DataKind = "identifier_in_path"
)

// CoverageStatus says whether a place is reached by an erasure rule.
type CoverageStatus string

// Coverage statuses.
const (
	// Covered: a statement, template or resolver of the instance erases
	// (deletes or anonymises) this place for the person.
	Covered CoverageStatus = "covered"
	// Uncovered: personal data no rule of the instance reaches.
	Uncovered CoverageStatus = "uncovered"
	// Ignored: an `ignore:` entry of the instance's config says why this
	// place is left alone.
	Ignored CoverageStatus = "ignored"
)

// Finding is one place that holds personal data.
type Finding struct {
	// Place names it: "table.column" in a database, a key prefix or path
	// pattern in a file store.
	Place  string         `json:"place"`
	Kind   DataKind       `json:"kind"`
	Status CoverageStatus `json:"status"`
	// Reason says why: the rule that covers it, what is missing (“orders.
	// customer_id refers to customers.id; no statement handles orders”),
	// or the ignore entry's reason.
	Reason string `json:"reason"`
	// Sampled is how many values (rows, keys) were read; Matched how many
	// of them looked like Kind (zero when the kind came from the name).
	Sampled int64 `json:"sampled"`
	Matched int64 `json:"matched"`
}

// Coverage is one instance's discovery report.
type Coverage struct {
	Connector string    `json:"connector"`
	Type      string    `json:"type"`
	RanAt     time.Time `json:"ran_at"`
	// Places counts every place read (columns, keys), personal or not.
	Places   int64     `json:"places"`
	Findings []Finding `json:"findings"`
	// Error is set when discovery could not run to the end; the findings
	// are then what it saw before.
	Error string `json:"error,omitempty"`
}

// Count returns how many findings have status st.
func (c Coverage) Count(st CoverageStatus) int {
	n := 0
	for _, f := range c.Findings {
		if f.Status == st {
			n++
		}
	}
	return n
}

// Sort orders findings uncovered first, then by place and kind.
func (c *Coverage) Sort() {
	rank := map[CoverageStatus]int{Uncovered: 0, Ignored: 1, Covered: 2}
	slices.SortFunc(c.Findings, func(a, b Finding) int {
		if d := rank[a.Status] - rank[b.Status]; d != 0 {
			return d
		}
		if d := strings.Compare(a.Place, b.Place); d != 0 {
			return d
		}
		return strings.Compare(string(a.Kind), string(b.Kind))
	})
}

// Ignore is an `ignore:` entry in a connector's config: a place discovery
// may find personal data in that the instance deliberately leaves alone.
//
//	ignore:
//	  - place: support_notes.body
//	    reason: kept 6 years for tax law (HGB §257); no erasure rule on purpose
type Ignore struct {
	Place  string `yaml:"place"`
	Reason string `yaml:"reason"`
}

// ValidateIgnores checks ignore entries: each names a place and a reason,
// and no place twice.
func ValidateIgnores(list []Ignore) error {
	var errs []error
	seen := map[string]bool{}
	for i, ig := range list {
		at := fmt.Sprintf("ignore[%d]", i)
		place := strings.TrimSpace(ig.Place)
		switch {
		case place == "":
			errs = append(errs, fmt.Errorf("%s.place: required (table.column, or a key prefix)", at))
		case seen[strings.ToLower(place)]:
			errs = append(errs, fmt.Errorf("%s.place: %q is ignored twice", at, place))
		}
		seen[strings.ToLower(place)] = true
		if strings.TrimSpace(ig.Reason) == "" {
			errs = append(errs, fmt.Errorf("%s.reason: required: say why this personal data is left alone", at))
		}
	}
	return errors.Join(errs...)
}

// IgnoreFor returns the ignore entry for place (case-insensitive): one
// naming it, or naming what it is in ("orders" for "orders.note").
func IgnoreFor(list []Ignore, place string) (Ignore, bool) {
	for _, ig := range list {
		p := strings.TrimSpace(ig.Place)
		if strings.EqualFold(p, place) || (len(place) > len(p) && place[len(p)] == '.' && strings.EqualFold(place[:len(p)], p)) {
			return ig, true
		}
	}
	return Ignore{}, false
}
