package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
)

// eventData is an event's JSON data (which holds no personal data), read
// loosely: a field that is missing or of another type reads as empty.
type eventData map[string]any

func (d eventData) str(key string) string {
	switch v := d[key].(type) {
	case string:
		return v
	case float64:
		return fmt.Sprint(int64(v))
	case bool:
		if v {
			return "yes"
		}
	}
	return ""
}

func (d eventData) num(key string) int64 {
	v, _ := d[key].(float64)
	return int64(v)
}

// list reads a list of strings, or of objects with a "kind" (identifier
// sources), as words joined by commas.
func (d eventData) list(key string) string {
	items, _ := d[key].([]any)
	var out []string
	for _, it := range items {
		switch v := it.(type) {
		case string:
			out = append(out, v)
		case map[string]any:
			if k, ok := v["kind"].(string); ok {
				out = append(out, k)
			}
		}
	}
	return strings.Join(out, ", ")
}

// evidence reads the data's evidence as "kind: value" lines, leaving out
// a manual system's instructions: they are what staff were asked to do,
// not proof of anything.
func (d eventData) evidence() []string {
	items, _ := d["evidence"].([]any)
	var out []string
	for _, it := range items {
		if m, ok := it.(map[string]any); ok && m["kind"] != "instructions" {
			out = append(out, fmt.Sprintf("%v: %v", m["kind"], m["value"]))
		}
	}
	return out
}

// instructions are what a manual system asks staff to do, if it does.
func (d eventData) instructions() string {
	items, _ := d["evidence"].([]any)
	for _, it := range items {
		if m, ok := it.(map[string]any); ok && m["kind"] == "instructions" {
			v, _ := m["value"].(string)
			return v
		}
	}
	return ""
}

// eventSentence says in words what an event of the request's timeline
// records, for a support agent; system names the task's connector
// instance. Evidence is listed apart, in full.
func eventSentence(e erasure.Event, system string) (string, []string) {
	var d eventData
	_ = json.Unmarshal(e.Data, &d)
	if system == "" {
		system = d.str("connector")
	}
	if system == "" {
		system = "a system"
	}
	try := func() string {
		if n := d.num("attempt"); n > 0 {
			return fmt.Sprintf(" (try %d)", n)
		}
		return ""
	}
	switch e.Type {
	case erasure.EventRequestReceived:
		return "The request was received.", nil
	case erasure.EventRequestStatus:
		return fmt.Sprintf("The request went from %s to %s.", words(d.str("from")), words(d.str("to"))), nil
	case erasure.EventTaskCreated:
		s := fmt.Sprintf("%s of %s was planned.", capitalise(phaseWords(d.str("phase"))), system)
		if r := d.str("reason"); r != "" {
			s = strings.TrimSuffix(s, ".") + ": " + r + "."
		}
		return s, nil
	case erasure.EventTaskDispatched:
		return "Sent to " + system + try() + ".", nil
	case erasure.EventTaskRedispatch:
		return "Sent to " + system + " again" + try() + ": no answer had come.", nil
	case erasure.EventTaskRetry:
		return system + " is tried again" + try() + ".", nil
	case erasure.EventTaskPoll:
		return system + "'s job will be asked about again.", nil
	case erasure.EventTaskResult:
		return resultSentence(d, system), d.evidence()
	case erasure.EventCertificateIssue:
		return fmt.Sprintf("Certificate %s was issued, signed with key %s.", d.str("certificate_id"), d.str("key_id")), nil
	case erasure.EventShredded:
		return "The person's identifiers were shredded: Lethe no longer holds them.", nil
	case erasure.EventExtended:
		return fmt.Sprintf("The deadline was extended from %s to %s (%s).", dayOf(d.str("from")), dayOf(d.str("to")), words(d.str("category"))), nil
	case erasure.EventTaskExempted:
		return fmt.Sprintf("%s was exempted from erasure (%s).", system, words(d.str("basis"))), nil
	case erasure.EventReplayErased:
		return system + " erased the person again after a backup was restored.", d.evidence()
	case erasure.EventIdentifiersResolved:
		return fmt.Sprintf("Look-ups found identifiers of these kinds: %s.", orNone(d.list("kinds"))), nil
	case erasure.EventIdentifiersAdded:
		return fmt.Sprintf("Staff added identifiers of these kinds: %s.", orNone(d.list("kinds"))), nil
	case erasure.EventTaskLookUpAgain:
		return system + " looks the person up again, by identifiers found since.", nil
	case erasure.EventErasing:
		return fmt.Sprintf("Look-ups are done; erasure starts, by %s.", orNone(d.list("identifiers"))), nil
	case erasure.EventTaskReleased:
		return system + " was sent its erasure: what it waited for is there.", nil
	case erasure.EventTaskNotApplicable:
		return system + " was declared not applicable: it is not searched.", nil
	case erasure.EventRequestFlagged:
		return "Flagged for staff: " + d.str("flag"), d.evidence()
	case erasure.EventFlagCleared:
		return "The flag was cleared.", nil
	}
	return capitalise(words(strings.ReplaceAll(e.Type, ".", " "))) + ".", nil
}

// resultSentence says what a system reported.
func resultSentence(d eventData, system string) string {
	records := d.num("records")
	switch {
	case d.str("kind") == "manual":
		switch erasure.TaskStatus(d.str("status")) {
		case erasure.TaskNotFound:
			return "Staff recorded " + system + " as searched by hand: nothing found."
		default:
			return fmt.Sprintf("Staff recorded %s as erased by hand: %s.", system, plural(records, "record", "records"))
		}
	}
	// by names what the system was searched by: "not found" means
	// absent under these identifiers, nothing more.
	by := ""
	if kinds := d.list("searched_by"); kinds != "" {
		by = ", searched by " + kinds
	}
	var s string
	switch erasure.TaskStatus(d.str("status")) {
	case erasure.TaskErased:
		s = fmt.Sprintf("%s erased %s%s.", system, plural(records, "record", "records"), by)
		if d.str("records_unknown") != "" {
			s = system + " erased the person's records" + by + "; it gave no count."
		}
	case erasure.TaskNotFound:
		s = system + " looked the person up and found nothing" + by + "."
	case erasure.TaskResolved:
		s = fmt.Sprintf("%s looked the person up and found identifiers of these kinds: %s.", system, orNone(d.list("found")))
	case erasure.TaskRunning:
		s = system + " started a job; it is asked again until the job is done."
		if in := d.instructions(); in != "" {
			s = system + " waits for a person to do it by hand. Instructions: " + in
		}
	case erasure.TaskFoundAgain:
		s = fmt.Sprintf("%s found the person again: %s.", system, plural(records, "record", "records"))
	case erasure.TaskFailed:
		s = fmt.Sprintf("%s failed on try %d: %s.", system, d.num("attempt"), orNone(d.str("error")))
		if t, err := time.Parse(time.RFC3339Nano, d.str("next_attempt_at")); err == nil {
			s = strings.TrimSuffix(s, ".") + "; next try " + whenFull(t) + "."
		}
	case erasure.TaskDead:
		s = fmt.Sprintf("%s gave up after %s: %s. A person must act (retry once it is fixed, or exempt).", system, plural(d.num("attempt"), "try", "tries"), orNone(d.str("error")))
	default:
		s = fmt.Sprintf("%s reported %s.", system, words(d.str("status")))
	}
	return s
}

func phaseWords(phase string) string {
	switch {
	case phase == string(erasure.PhaseResolve):
		return "look-up"
	case strings.HasPrefix(phase, "recheck:"):
		return "re-check"
	case strings.HasPrefix(phase, "reerase:"):
		return "re-erasure"
	}
	return "erasure"
}

func words(s string) string { return strings.ReplaceAll(s, "_", " ") }

func orNone(s string) string {
	if strings.TrimSpace(s) == "" {
		return "none named"
	}
	return s
}

// dayOf shows an RFC 3339 time as its date, or the text as it is.
func dayOf(s string) string {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC().Format(time.DateOnly)
	}
	return s
}

// whenFull is a time to the second, for the timeline.
func whenFull(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// eventJSON is an event's data indented, in full, for those who want it.
func eventJSON(data json.RawMessage) string {
	var b bytes.Buffer
	if len(data) == 0 || json.Indent(&b, data, "", "  ") != nil || b.String() == "{}" || b.String() == "null" {
		return ""
	}
	return b.String()
}
