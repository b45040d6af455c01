package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
)

// requestUsage is `lethe request --help`; commandHelp reads each verb's
// synopsis and description from it.
const requestUsage = `lethe request: staff work on erasure requests, against a running Lethe.

Usage:
  lethe request file    (--email E | --phone P | --user-id SYSTEM=ID ...) [--jurisdiction gdpr] [--idempotency-key K]
                    file a request for a person (the same --idempotency-key files once)
  lethe request import FILE.csv [--jurisdiction gdpr] [--batch 500] [--name NAME]
                    file a request for every row of a CSV (columns email, phone, user_id:SYSTEM, jurisdiction), in batches, with progress; run it again after an interruption to go on, filing nobody twice
  lethe request batch   NAME
                    how far a batch (an import, a bulk filing) has got: requests over, systems done
  lethe request list    [--status S[,S...]] [--due-before DATE] [--batch NAME] [--limit N] [--before ID]
                    requests, newest first, a page at a time
  lethe request show    ID
                    a request, its systems' tasks and what each found
  lethe request approve ID --reason R
                    approve a request waiting for approval
  lethe request deny    ID --reason R
                    deny a request; the reason is recorded (and sent to the person when Lethe has their address)
  lethe request extend  ID --due DATE --category C --reason R
                    move the deadline (GDPR: by up to two more months, for complexity or number of requests)
  lethe request retry   ID SYSTEM --reason R
                    try a system's task again after it gave up
  lethe request cancel  ID --reason R
                    cancel a request that has not finished
  lethe request exempt  ID SYSTEM --basis B --reason R
                    keep a system's data under a legal basis (Art. 17(3)); the certificate says so

Every verb takes:
  --url URL          Lethe's address (default $LETHE_URL, else http://127.0.0.1:8080)
  --token T          a staff API token; or --token-file FILE (its first line), or $LETHE_TOKEN
  --json             print the API's JSON answer instead of a table

Exit status: 0 done, 1 Lethe refused or could not be reached (the reason is printed), 2 a mistake in the command.
`

// requestVerb is one `lethe request` verb: its positional arguments, its
// own flags, and the call it makes.
type requestVerb struct {
	args  []string
	flags func(fs *flag.FlagSet) func(pos []string) (call, error)
	// run is a verb of many calls (import), instead of flags.
	run func(fs *flag.FlagSet) func(ctx context.Context, e env, c *staffClient, pos []string) error
}

// call is one API call of a verb and how to print its answer.
type call struct {
	method, path string
	query        url.Values
	body         any
	header       http.Header
	print        func(w io.Writer, answer []byte) error
}

var requestVerbs = map[string]requestVerb{
	"file": {flags: func(fs *flag.FlagSet) func([]string) (call, error) {
		email := fs.String("email", "", "the person's email address")
		phone := fs.String("phone", "", "the person's phone number, E.164 (+447700900123)")
		userIDs := map[string]string{}
		fs.Func("user-id", "SYSTEM=ID: the person's id in a system (repeat for several)", func(v string) error {
			system, id, ok := strings.Cut(v, "=")
			if !ok || system == "" || id == "" {
				return errors.New("want SYSTEM=ID, such as shop-db=42")
			}
			userIDs[system] = id
			return nil
		})
		jurisdiction := fs.String("jurisdiction", "gdpr", "the law the request is made under (its deadline follows)")
		key := fs.String("idempotency-key", "", "filing again with the same key returns the first request instead of a second")
		return func([]string) (call, error) {
			if *email == "" && *phone == "" && len(userIDs) == 0 {
				return call{}, fmt.Errorf("say who: --email, --phone or --user-id SYSTEM=ID")
			}
			subject := map[string]any{}
			if *email != "" {
				subject["email"] = *email
			}
			if *phone != "" {
				subject["phone"] = *phone
			}
			if len(userIDs) > 0 {
				subject["user_ids"] = userIDs
			}
			c := call{method: http.MethodPost, path: "/v1/requests", print: printRequest,
				body: map[string]any{"subject": subject, "jurisdiction": *jurisdiction}}
			if *key != "" {
				c.header = http.Header{"Idempotency-Key": {*key}}
			}
			return c, nil
		}
	}},
	"list": {flags: func(fs *flag.FlagSet) func([]string) (call, error) {
		status := fs.String("status", "", "only these statuses, comma-separated (received, unverified, pending_approval, in_progress, needs_attention, completed, completed_with_exemptions, denied, cancelled)")
		dueBefore := fs.String("due-before", "", "only requests due before this date (YYYY-MM-DD, or an RFC 3339 time)")
		limit := fs.Int("limit", 50, "at most this many (1 to 500)")
		before := fs.String("before", "", "the page after this request id (the previous page's last)")
		batch := fs.String("batch", "", "only the requests filed in this batch")
		return func([]string) (call, error) {
			q := url.Values{}
			if *status != "" {
				q.Set("status", *status)
			}
			if *batch != "" {
				q.Set("batch", *batch)
			}
			if *dueBefore != "" {
				t, err := parseWhen(*dueBefore)
				if err != nil {
					return call{}, fmt.Errorf("--due-before: %v", err)
				}
				q.Set("due_before", t.Format(time.RFC3339))
			}
			q.Set("limit", strconv.Itoa(*limit))
			if *before != "" {
				q.Set("before", *before)
			}
			return call{method: http.MethodGet, path: "/v1/requests", query: q, print: printList}, nil
		}
	}},
	"batch": {args: []string{"NAME"}, flags: func(*flag.FlagSet) func([]string) (call, error) {
		return func(pos []string) (call, error) {
			return call{method: http.MethodGet, path: "/v1/batches/" + url.PathEscape(pos[0]), print: printBatch}, nil
		}
	}},
	"show": {args: []string{"ID"}, flags: func(*flag.FlagSet) func([]string) (call, error) {
		return func(pos []string) (call, error) {
			return call{method: http.MethodGet, path: "/v1/requests/" + url.PathEscape(pos[0]), print: printRequest}, nil
		}
	}},
	"approve": reasonVerb("approve"),
	"deny":    reasonVerb("deny"),
	"cancel":  reasonVerb("cancel"),
	"retry": {args: []string{"ID", "SYSTEM"}, flags: func(fs *flag.FlagSet) func([]string) (call, error) {
		reason := fs.String("reason", "", "why, for the request's history")
		return func(pos []string) (call, error) {
			if *reason == "" {
				return call{}, fmt.Errorf("retry needs --reason")
			}
			return call{method: http.MethodPost, path: taskPath(pos, "retry"), body: map[string]string{"reason": *reason}, print: printRequest}, nil
		}
	}},
	"extend": {args: []string{"ID"}, flags: func(fs *flag.FlagSet) func([]string) (call, error) {
		due := fs.String("due", "", "the new deadline (YYYY-MM-DD: the start of that day, UTC; or an RFC 3339 time)")
		category := fs.String("category", "", "the kind of reason the law allows (GDPR: complexity or number_of_requests)")
		reason := fs.String("reason", "", "why, in words the person will read")
		return func(pos []string) (call, error) {
			if *due == "" || *category == "" || *reason == "" {
				return call{}, fmt.Errorf("extend needs --due, --category and --reason")
			}
			t, err := parseWhen(*due)
			if err != nil {
				return call{}, fmt.Errorf("--due: %v", err)
			}
			return call{method: http.MethodPost, path: "/v1/requests/" + url.PathEscape(pos[0]) + "/extend", print: printRequest,
				body: map[string]any{"due_at": t, "category": *category, "reason": *reason}}, nil
		}
	}},
	"exempt": {args: []string{"ID", "SYSTEM"}, flags: func(fs *flag.FlagSet) func([]string) (call, error) {
		basis := fs.String("basis", "", "the legal basis for keeping the data (GDPR: art17-3-a … art17-3-e, such as art17-3-e for legal claims)")
		reason := fs.String("reason", "", "why, for the certificate and the request's history")
		return func(pos []string) (call, error) {
			if *basis == "" || *reason == "" {
				return call{}, fmt.Errorf("exempt needs --basis and --reason")
			}
			return call{method: http.MethodPost, path: taskPath(pos, "exempt"), print: printRequest,
				body: map[string]string{"basis": *basis, "reason": *reason}}, nil
		}
	}},
}

// reasonVerb is a verb on a request taking {"reason"}.
func reasonVerb(action string) requestVerb {
	return requestVerb{args: []string{"ID"}, flags: func(fs *flag.FlagSet) func([]string) (call, error) {
		reason := fs.String("reason", "", "why, for the request's history")
		return func(pos []string) (call, error) {
			if *reason == "" {
				return call{}, fmt.Errorf("%s needs --reason", action)
			}
			return call{method: http.MethodPost, path: "/v1/requests/" + url.PathEscape(pos[0]) + "/" + action,
				body: map[string]string{"reason": *reason}, print: printRequest}, nil
		}
	}}
}

func taskPath(pos []string, action string) string {
	return "/v1/requests/" + url.PathEscape(pos[0]) + "/tasks/" + url.PathEscape(pos[1]) + "/" + action
}

// parseWhen reads a date (the start of that day, UTC) or an RFC 3339 time.
func parseWhen(v string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither a date (2027-01-31) nor an RFC 3339 time (2027-01-31T12:00:00Z)", v)
}

// runRequest is `lethe request VERB …`.
func runRequest(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		w := e.stdout
		if len(args) == 0 {
			w = e.stderr
		}
		fmt.Fprint(w, requestUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	verb, ok := requestVerbs[args[0]]
	if args[0] == "import" {
		verb, ok = importVerb, true
	}
	if !ok {
		fmt.Fprintf(e.stderr, "lethe request: unknown verb %q\n\n%s", args[0], requestUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("request "+args[0], flag.ContinueOnError)
	base := fs.String("url", "", "Lethe's address (default $LETHE_URL, else http://127.0.0.1:8080)")
	token := fs.String("token", "", "a staff API token (or --token-file, or $LETHE_TOKEN)")
	tokenFile := fs.String("token-file", "", "a file whose first line is the token")
	asJSON := fs.Bool("json", false, "print the API's JSON answer instead of a table")
	var build func([]string) (call, error)
	var run func(context.Context, env, *staffClient, []string) error
	if verb.run != nil {
		run = verb.run(fs)
	} else {
		build = verb.flags(fs)
	}
	pos, err := parseFlags(fs, args[1:], e)
	if err != nil {
		return err
	}
	mistake := func(err error) error {
		fmt.Fprintf(e.stderr, "lethe %s: %v (lethe %s --help says more)\n", fs.Name(), err, fs.Name())
		return errUsage
	}
	if len(pos) != len(verb.args) {
		return mistake(fmt.Errorf("want %s, got %d argument(s)", argList(verb.args), len(pos)))
	}
	client, err := newStaffClient(e, *base, *token, *tokenFile)
	if err != nil {
		return mistake(err)
	}
	if run != nil {
		if err := run(ctx, e, client, pos); errors.Is(err, errImportUsage) {
			return mistake(err)
		} else if err != nil {
			return fmt.Errorf("request %s: %w", args[0], err)
		}
		return nil
	}
	c, err := build(pos)
	if err != nil {
		return mistake(err)
	}
	answer, err := client.do(ctx, c)
	if err != nil {
		return fmt.Errorf("request %s: %w", args[0], err)
	}
	if *asJSON {
		_, err := e.stdout.Write(answer)
		return err
	}
	return c.print(e.stdout, answer)
}

func argList(names []string) string {
	if len(names) == 0 {
		return "no arguments"
	}
	return strings.Join(names, " ")
}

// staffClient calls a running Lethe's API with a staff token.
type staffClient struct {
	base, token string
	http        *http.Client
}

func newStaffClient(e env, base, token, tokenFile string) (*staffClient, error) {
	if base == "" {
		base = e.getenv("LETHE_URL")
	}
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q is not an http(s) address such as http://127.0.0.1:8080", base)
	}
	switch {
	case token != "" && tokenFile != "":
		return nil, errors.New("--token and --token-file are alternatives: give one")
	case tokenFile != "":
		f, err := os.Open(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		defer f.Close()
		line, err := bufio.NewReader(io.LimitReader(f, 4096)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(line)
	case token == "":
		token = strings.TrimSpace(e.getenv("LETHE_TOKEN"))
	}
	if token == "" {
		return nil, errors.New("no API token: pass --token or --token-file, or set LETHE_TOKEN")
	}
	return &staffClient{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// do makes c's call and returns the answer's body, or an error saying
// what Lethe answered.
func (s *staffClient) do(ctx context.Context, c call) ([]byte, error) {
	u := s.base + c.path
	if len(c.query) > 0 {
		u += "?" + c.query.Encode()
	}
	var body io.Reader
	if c.body != nil {
		b, err := json.Marshal(c.body)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, u, body)
	if err != nil {
		return nil, err
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "application/json")
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("cannot reach Lethe at %s: %w", s.base, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("reading Lethe's answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		return nil, apiError(resp, answer)
	}
	return answer, nil
}

// apiError says in one line what Lethe refused and why.
func apiError(resp *http.Response, answer []byte) error {
	var e struct {
		Error struct{ Code, Message, Field string }
	}
	if json.Unmarshal(answer, &e) != nil || e.Error.Message == "" {
		return fmt.Errorf("the server answered %s", resp.Status)
	}
	msg := e.Error.Message
	if e.Error.Field != "" && !strings.HasPrefix(msg, e.Error.Field) {
		msg = e.Error.Field + ": " + msg
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return fmt.Errorf("the token was refused (%s): %s; check --token, --token-file or LETHE_TOKEN", resp.Status, msg)
	case http.StatusForbidden:
		return fmt.Errorf("the token may not do this (%s): %s", resp.Status, msg)
	}
	return fmt.Errorf("%s (%s, %s)", msg, resp.Status, e.Error.Code)
}

// shownRequest is what the tables show of the API's request view.
type shownRequest struct {
	ID, Status, Jurisdiction, Source, Phase string
	CreatedBy                               string     `json:"created_by"`
	ReceivedAt                              time.Time  `json:"received_at"`
	DueAt                                   time.Time  `json:"due_at"`
	CompletedAt                             *time.Time `json:"completed_at"`
	Overdue                                 bool
	Subject                                 *struct {
		Email, Phone string
		UserIDs      map[string]string `json:"user_ids"`
	}
	CertificateURL string `json:"certificate_url"`
	Tasks          []struct {
		Connector, Phase, Status, Reason, Verification string
		Attempts                                       int
		RecordsErased                                  int64  `json:"records_erased"`
		RecordsUnknown                                 bool   `json:"records_unknown"`
		LastError                                      string `json:"last_error"`
		Evidence                                       []struct{ Kind, Value string }
	}
}

// timeShown is how the CLI writes a time: UTC, to the minute.
func timeShown(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// dueShown is a deadline with the days left, or how late it is.
func dueShown(r shownRequest, now time.Time) string {
	s := timeShown(r.DueAt)
	if r.CompletedAt != nil {
		return s
	}
	days := int(r.DueAt.Sub(now).Hours() / 24)
	switch {
	case r.Overdue:
		return s + fmt.Sprintf(" (OVERDUE by %s)", plural(-days, "day"))
	default:
		return s + fmt.Sprintf(" (%s left)", plural(days, "day"))
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

func printRequest(w io.Writer, answer []byte) error {
	var r shownRequest
	if err := json.Unmarshal(answer, &r); err != nil {
		return fmt.Errorf("reading Lethe's answer: %w", err)
	}
	status := r.Status
	if r.Phase != "" && r.CompletedAt == nil {
		status += " (" + r.Phase + " phase)"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "request\t%s\n", r.ID)
	fmt.Fprintf(tw, "status\t%s\n", status)
	if r.Subject != nil {
		fmt.Fprintf(tw, "person\t%s\n", subjectShown(r.Subject.Email, r.Subject.Phone, r.Subject.UserIDs))
	}
	fmt.Fprintf(tw, "received\t%s (%s, by %s)\n", timeShown(r.ReceivedAt), r.Source, r.CreatedBy)
	fmt.Fprintf(tw, "due\t%s\n", dueShown(r, time.Now()))
	if r.CompletedAt != nil {
		fmt.Fprintf(tw, "completed\t%s\n", timeShown(*r.CompletedAt))
	}
	if r.CertificateURL != "" {
		fmt.Fprintf(tw, "certificate\t%s\n", r.CertificateURL)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Tasks) == 0 {
		return nil
	}
	done, systems := 0, 0
	for _, t := range r.Tasks {
		if t.Phase == erasure.PhaseResolve {
			continue // a look-up, not a system's erasure
		}
		systems++
		if erasure.TaskStatus(t.Status).Done() {
			done++
		}
	}
	fmt.Fprintf(w, "\n%d of %d systems finished\n", done, systems)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SYSTEM\tPHASE\tSTATUS\tRECORDS\tTRIES\tNOTE")
	for _, t := range r.Tasks {
		records := strconv.FormatInt(t.RecordsErased, 10)
		if t.RecordsUnknown {
			records = "not counted"
		}
		note := t.Reason
		if t.LastError != "" {
			note = "last error: " + t.LastError
		}
		for _, ev := range t.Evidence {
			if ev.Kind == "instructions" && t.Status == string(erasure.TaskRunning) && note == "" {
				note = "waiting for a person: " + ev.Value
			}
		}
		if t.Verification != "" && note == "" {
			note = "verified: " + t.Verification
		}
		status := t.Status
		switch {
		case status == string(erasure.TaskDead):
			status = "gave up after " + strconv.Itoa(t.Attempts) + " tries (a person must act)"
			if t.Attempts == 1 {
				status = "gave up after 1 try (a person must act)"
			}
		case erasure.TaskStatus(status).NeedsPerson():
			status += " (a person must act)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", t.Connector, t.Phase, status, records, t.Attempts, oneLine(note))
	}
	return tw.Flush()
}

func subjectShown(email, phone string, userIDs map[string]string) string {
	var parts []string
	if email != "" {
		parts = append(parts, email)
	}
	if phone != "" {
		parts = append(parts, phone)
	}
	systems := make([]string, 0, len(userIDs))
	for s := range userIDs {
		systems = append(systems, s)
	}
	sort.Strings(systems)
	for _, s := range systems {
		parts = append(parts, s+"="+userIDs[s])
	}
	return strings.Join(parts, ", ")
}

// oneLine keeps a table cell on one line and short.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 80 {
		return string(r[:79]) + "…"
	}
	return s
}

// printBatch says how far a batch has got.
func printBatch(w io.Writer, answer []byte) error {
	var b struct {
		Name                     string
		Requests, Final, Overdue int
		ByStatus                 map[string]int `json:"by_status"`
		Systems                  int
		SystemsDone              int `json:"systems_done"`
		WaitingForPerson         int `json:"waiting_for_person"`
	}
	if err := json.Unmarshal(answer, &b); err != nil {
		return fmt.Errorf("reading Lethe's answer: %w", err)
	}
	fmt.Fprintf(w, "batch %s: %d of %d requests over %s, %d of %d systems done\n",
		b.Name, b.Final, b.Requests, progressBar(b.Final, max(b.Requests, 1), 30), b.SystemsDone, b.Systems)
	statuses := slices.Sorted(maps.Keys(b.ByStatus))
	for _, st := range statuses {
		fmt.Fprintf(w, "  %s: %d\n", st, b.ByStatus[st])
	}
	if b.WaitingForPerson > 0 {
		fmt.Fprintf(w, "%d tasks wait for a person\n", b.WaitingForPerson)
	}
	if b.Overdue > 0 {
		fmt.Fprintf(w, "%d requests overdue\n", b.Overdue)
	}
	_, err := fmt.Fprintf(w, "its requests: lethe request list --batch %s\n", b.Name)
	return err
}

func printList(w io.Writer, answer []byte) error {
	var page struct {
		Requests []shownRequest
		Next     string
	}
	if err := json.Unmarshal(answer, &page); err != nil {
		return fmt.Errorf("reading Lethe's answer: %w", err)
	}
	if len(page.Requests) == 0 {
		_, err := fmt.Fprintln(w, "no requests match")
		return err
	}
	now := time.Now()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tRECEIVED\tDUE")
	for _, r := range page.Requests {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.Status, timeShown(r.ReceivedAt), dueShown(r, now))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.Next != "" {
		fmt.Fprintf(w, "\nmore: add --before %s\n", page.Next)
	}
	return nil
}
