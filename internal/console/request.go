package console

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/coordinator"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"go.uber.org/zap"
)

// requestView is what the request page shows of a request. It has no
// Subject field on purpose: identifiers never reach a template.
type requestView struct {
	ID, Status, Jurisdiction, Source, CreatedBy string
	// Batch names the batch the request was filed in, if any.
	Batch                                      string
	ReceivedAt, DueAt, ExtendedAt, CompletedAt time.Time
	ShreddedAt                                 time.Time
	// OriginalDueAt and ExtensionText are set for an extended request.
	OriginalDueAt time.Time
	ExtensionText string
	Overdue       bool
	// Identifiers lists the kinds the request has and where each came
	// from (kinds only).
	Identifiers string
	// Flag says why staff should look at the completed request (a
	// re-check found the person again, or could not run).
	Flag      string
	FlaggedAt time.Time
}

// followUpView is a re-check or re-erasure of the completed request.
type followUpView struct {
	Connector string
	// What is "re-check" or "re-erasure"; Day is the age ("day 30").
	What, Day, Status, LastError string
	Attempt                      int
	// Records: what a re-check found, or a re-erasure removed.
	Records            string
	DueAt, CompletedAt time.Time
	Evidence           []erasure.Evidence
}

type taskView struct {
	Connector, Type, Status, LastError, Verified, JobRef string
	// StatusText says the status in an agent's words ("gave up after 8
	// tries"); Instructions are what a manual system asks staff to do,
	// shown while it waits, not as evidence.
	StatusText, Instructions string
	// Phase is "look-up" for a resolver's task, "erasure" otherwise.
	Phase   string
	Attempt int
	// Records is the count erased, or "unknown" when the system gave none.
	Records string
	// SearchedBy: the kinds searched (or looked up) by, with sources;
	// Found: what a resolver supplied; Reason: why a task needs an
	// identifier or is not applicable.
	SearchedBy, Found, Reason  string
	Evidence                   []erasure.Evidence
	Basis, BasisText           string
	NextAttemptAt, CompletedAt time.Time
	// Configured is false when the connector instance is no longer in
	// the configuration.
	Configured bool
}

// eventView is one entry of the timeline: what happened in a sentence,
// the evidence it carried, and its data in full (no personal data).
type eventView struct {
	At                                       time.Time
	Type, Connector, Actor, Reason, Sentence string
	Evidence                                 []string
	JSON                                     string
}

type certView struct {
	ID       string
	IssuedAt time.Time
	LogIndex int64
	Link     string
}

type basisOption struct{ Code, Text string }

// actionForms are the forms that make sense for the request's state.
type actionForms struct {
	Approve, Deny, Cancel bool
	// Extend: the date input's bounds; ExtendNote says why there is no form.
	Extend     bool
	ExtendMin  string
	ExtendMax  string
	ExtendNote string
	Categories []basisOption
	// Reaches says what becomes of a reason given on the deny and extend
	// forms: whether Lethe emails it, shows it, or staff must tell the
	// person themselves.
	Reaches  string
	Exempt   []string
	Bases    []basisOption
	Retry    []string
	Complete []string
	// NotApplicable lists tasks that may be declared not applicable;
	// Needs, the kinds tasks wait for (offered in the identifier form).
	NotApplicable []string
	Identifiers   bool
	Needs         []string
	// ClearFlag: the request is flagged and the viewer may clear it.
	ClearFlag bool
	// Any is false for a final request: nothing can be done.
	Any bool
}

type requestData struct {
	// reaches says how a reason given for a denial or an extension gets to
	// the person.
	reaches   string
	Req       requestView
	Tasks     []taskView
	FollowUps []followUpView
	Events    []eventView
	Cert      *certView
	Actions   *actionForms
	// Failed names the form whose action failed; Values are what it sent,
	// to fill it in again.
	Failed string
	Values url.Values
}

// Refill returns what the failed form sent in field, for the form of
// action; "" for any other form.
func (d requestData) Refill(action, field string) string {
	if d.Failed != action {
		return ""
	}
	return d.Values.Get(field)
}

// Request shows one request: summary, tasks, timeline, certificate and
// the actions the viewer may take: GET /console/requests/{id}.
func (c *Console) Request() http.Handler {
	return c.authed(canRead, func(w http.ResponseWriter, r *http.Request, s session) {
		id := r.PathValue("id")
		page := pageData{Title: "Request", Flash: flashes[r.URL.Query().Get("done")]}.withSession(&s)
		c.showRequest(w, r, s, id, page, http.StatusOK, "", nil)
	})
}

func (c *Console) showRequest(w http.ResponseWriter, r *http.Request, s session, id string, page pageData, status int, failed string, values url.Values) {
	if !erasure.ValidID(id) {
		c.errorPage(w, r, &s, http.StatusNotFound, "There is no request with this id.")
		return
	}
	data, err := c.requestData(r.Context(), id, s)
	if errors.Is(err, store.ErrNotFound) {
		c.errorPage(w, r, &s, http.StatusNotFound, "There is no request with this id. It may have been purged after its retention period.")
		return
	}
	if err != nil {
		c.internalError(w, r, &s, err)
		return
	}
	data.Failed, data.Values = failed, values
	if done := r.URL.Query().Get("done"); done == "deny" || done == "extend" {
		page.Flash += " " + data.reaches
	}
	page.Title = "Request " + id
	page.Content = data
	c.render(w, r, status, "request", page)
}

func (c *Console) requestData(ctx context.Context, id string, s session) (requestData, error) {
	req, err := c.store.Request(ctx, id)
	if err != nil {
		return requestData{}, err
	}
	tasks, err := c.store.Tasks(ctx, id)
	if err != nil {
		return requestData{}, err
	}
	events, err := c.store.Events(ctx, id)
	if err != nil {
		return requestData{}, err
	}
	var cert *certView
	switch crt, err := c.store.Certificate(ctx, id); {
	case err == nil:
		cert = &certView{ID: crt.ID, IssuedAt: crt.IssuedAt, LogIndex: crt.LogIndex, Link: "/audit?certificate=" + url.QueryEscape(crt.ID)}
	case !errors.Is(err, store.ErrNotFound):
		return requestData{}, err
	}
	now := c.clock()
	d := requestData{reaches: c.reaches(req), Cert: cert, Req: requestView{ID: req.ID, Status: string(req.Status), Jurisdiction: string(req.Jurisdiction),
		Source: req.Source, CreatedBy: req.CreatedBy, Batch: req.Batch, ReceivedAt: req.ReceivedAt, DueAt: req.DueAt,
		ExtendedAt: req.ExtendedAt, CompletedAt: req.CompletedAt, ShreddedAt: req.ShreddedAt, Overdue: req.Overdue(now),
		Identifiers: sourcesText(req.Sources.List()), Flag: req.Flag, FlaggedAt: req.FlaggedAt}}
	if !req.ExtendedAt.IsZero() {
		d.Req.OriginalDueAt = req.FirstDueAt()
		d.Req.ExtensionText, _ = req.Jurisdiction.ExtensionCategory(req.ExtensionCategory)
	}
	byTask := map[string]string{}
	for _, t := range tasks {
		byTask[t.ID] = t.Connector
		tv := taskView{Connector: t.Connector, Type: t.ConnectorType, Status: string(t.Status), LastError: t.LastError,
			Verified: t.Verified, JobRef: t.JobRef, Attempt: t.Attempt, Records: strconv.FormatInt(t.RecordsErased, 10), Evidence: t.Evidence,
			Basis: t.ExemptionBasis, CompletedAt: t.CompletedAt, Configured: slices.Contains(c.connectors, t.Connector),
			Phase: "erasure", Reason: t.Reason}
		if t.RecordsUnknown {
			tv.Records = "unknown"
		}
		tv.StatusText, tv.Instructions, tv.Evidence = taskWords(t)
		if t.Status.Done() || t.Status == erasure.TaskDead {
			tv.JobRef = "" // the job is over: its reference says nothing more
		}
		if t.Phase == erasure.PhaseResolve {
			tv.Phase, tv.Records = "look-up", "—"
			var found []string
			for _, k := range t.Found {
				found = append(found, string(k))
			}
			tv.Found = strings.Join(found, ", ")
		}
		var by []erasure.Source
		for _, k := range t.SearchedBy {
			by = append(by, erasure.Source{Kind: k, From: req.Sources[k]})
		}
		tv.SearchedBy = sourcesText(by)
		if t.Status == erasure.TaskFailed {
			tv.NextAttemptAt = t.NextAttemptAt
		}
		if t.ExemptionBasis != "" {
			tv.BasisText, _ = req.Jurisdiction.ExemptionBasis(t.ExemptionBasis)
		}
		d.Tasks = append(d.Tasks, tv)
	}
	fs, err := c.store.FollowUps(ctx, id)
	if err != nil {
		return requestData{}, err
	}
	d.FollowUps = followUpViews(fs)
	for _, f := range fs {
		byTask[f.ID] = f.Connector
	}
	for _, e := range events {
		sentence, evidence := eventSentence(e, byTask[e.TaskID])
		d.Events = append(d.Events, eventView{At: e.At, Type: e.Type, Connector: byTask[e.TaskID], Actor: e.Actor,
			Reason: e.Reason, Sentence: sentence, Evidence: evidence, JSON: eventJSON(e.Data)})
	}
	if s.canAct() {
		d.Actions = c.actionsFor(req, tasks, now)
	}
	return d, nil
}

// taskWords says a task's status as an agent reads it, and splits a
// manual system's instructions from the evidence: they are what staff
// were asked to do, not proof that it was done.
func taskWords(t erasure.Task) (status, instructions string, evidence []erasure.Evidence) {
	for _, ev := range t.Evidence {
		if ev.Kind == "instructions" {
			instructions = ev.Value
			continue
		}
		evidence = append(evidence, ev)
	}
	if t.Status.Done() {
		instructions = ""
	}
	switch t.Status {
	case erasure.TaskDead:
		status = "gave up after " + plural(t.Attempt, "try", "tries") + "; a person must act"
	case erasure.TaskFailed:
		status = "failed on try " + strconv.Itoa(t.Attempt) + "; tried again"
	case erasure.TaskRunning:
		status = "running"
		if instructions != "" {
			status = "waiting for a person"
		}
	default:
		status = words(string(t.Status))
	}
	return status, instructions, evidence
}

func followUpViews(fs []erasure.Task) []followUpView {
	var out []followUpView
	for _, t := range fs {
		kind, after, ok := t.FollowUp()
		if !ok {
			continue
		}
		v := followUpView{Connector: t.Connector, What: "re-check", Day: erasure.AgeDay(after), Status: string(t.Status),
			LastError: t.LastError, Attempt: t.Attempt, CompletedAt: t.CompletedAt, Evidence: t.Evidence, Records: "—"}
		if kind == "reerase" {
			v.What = "re-erasure"
		}
		switch t.Status {
		case erasure.TaskScheduled:
			v.DueAt, v.Attempt = t.NextAttemptAt, 0
		case erasure.TaskFoundAgain:
			v.Records = strconv.FormatInt(t.RecordsErased, 10) + " found"
		case erasure.TaskErased:
			v.Records = strconv.FormatInt(t.RecordsErased, 10) + " erased"
			if t.RecordsUnknown {
				v.Records = "erased (no count)"
			}
		case erasure.TaskNotFound:
			v.Records = "0 found"
		}
		out = append(out, v)
	}
	return out
}

// sourcesText writes kinds with where they came from.
func sourcesText(ss []erasure.Source) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s.Kind) + " (" + s.From + ")"
	}
	return strings.Join(parts, ", ")
}

// reaches says how the reason for a denial or an extension gets to the
// person, as the coordinator and the portal will really do it.
func (c *Console) reaches(req erasure.Request) string {
	switch {
	case req.Source != "portal":
		via := req.Source
		if via == "api" {
			via = "the API"
		}
		return "Lethe does not contact the person: this request came in through " + via +
			", not the request portal, so it has no status page and Lethe sends no email. Tell the person the reason yourself."
	case !c.coord.Notifies(req):
		return "No email is sent (no mail server is configured): the reason is shown on the person's status page only."
	case !req.ShreddedAt.IsZero() || req.Subject.Email == "":
		return "Lethe holds no email address for the person: the reason is shown on their status page only."
	}
	return "The reason is emailed to the person and shown on their status page."
}

// actionsFor offers what the coordinator would accept now; it decides
// again when the form comes back.
func (c *Console) actionsFor(req erasure.Request, tasks []erasure.Task, now time.Time) *actionForms {
	a := &actionForms{ClearFlag: req.Flag != ""}
	if req.Status.Final() {
		a.Any = a.ClearFlag
		return a
	}
	a.Approve = req.Status == erasure.RequestPendingApproval
	a.Deny = req.Status == erasure.RequestReceived || req.Status == erasure.RequestPendingApproval
	a.Cancel = true
	a.Reaches = c.reaches(req)
	switch {
	case !req.ExtendedAt.IsZero():
		a.ExtendNote = "The deadline was extended on " + when(req.ExtendedAt) + "; the law allows one extension."
	case now.After(req.DueAt):
		a.ExtendNote = "The deadline has passed: an extension had to be decided before it."
	default:
		a.Extend = true
		a.ExtendMin = req.DueAt.AddDate(0, 0, 1).Format(time.DateOnly)
		a.ExtendMax = req.Jurisdiction.MaxExtension(req.DueAt).Format(time.DateOnly)
		a.Categories = extensionOptions(req.Jurisdiction, "")
	}
	started := req.Status == erasure.RequestInProgress || req.Status == erasure.RequestNeedsAttention
	a.Identifiers = started && req.ShreddedAt.IsZero()
	for _, t := range tasks {
		if t.Status.Done() {
			continue
		}
		if t.Status == erasure.TaskDead && slices.Contains(c.connectors, t.Connector) {
			a.Retry = append(a.Retry, t.Connector)
		}
		switch t.Status {
		case erasure.TaskNeedsIdentifier, erasure.TaskDead, erasure.TaskFailed, erasure.TaskWaiting:
			a.NotApplicable = append(a.NotApplicable, t.Connector)
		}
		if t.Status == erasure.TaskNeedsIdentifier {
			for _, missing := range c.needs(t) {
				if !slices.Contains(a.Needs, missing) {
					a.Needs = append(a.Needs, missing)
				}
			}
		}
		if t.Phase == erasure.PhaseResolve {
			continue // a look-up is not exempted nor done by hand
		}
		a.Exempt = append(a.Exempt, t.Connector)
		if t.Status == erasure.TaskDead || t.ConnectorType == "manual" {
			a.Complete = append(a.Complete, t.Connector)
		}
	}
	for _, code := range req.Jurisdiction.ExemptionCodes() {
		text, _ := req.Jurisdiction.ExemptionBasis(code)
		a.Bases = append(a.Bases, basisOption{Code: code, Text: text})
	}
	a.Any = true
	return a
}

// needs lists the kinds a needs_identifier task names in its reason.
func (c *Console) needs(t erasure.Task) []string {
	var out []string
	for _, w := range strings.FieldsFunc(t.Reason, func(r rune) bool { return r == ' ' || r == ':' || r == ',' || r == ';' }) {
		if k, err := erasure.ParseKind(w); err == nil && !slices.Contains(out, string(k)) {
			out = append(out, string(k))
		}
	}
	return out
}

// Actions a form may post, with the message shown after it worked.
var flashes = map[string]string{
	"identifiers":    "The identifier was added; systems that needed it are searched.",
	"not-applicable": "The system was declared not applicable to this person; the certificate gives the reason.",
	"approve":        "Approved: erasure has started in every system.",
	"deny":           "Denied.", // and what becomes of the reason: reaches

	"extend":     "The deadline was extended.",
	"exempt":     "The system was exempted; its data is kept on the legal basis given.",
	"retry":      "The task was sent to its system again.",
	"complete":   "The task was recorded as done by hand.",
	"cancel":     "The request was cancelled.",
	"clear-flag": "The flag was cleared; the reason is in the timeline.",
}

var connectorNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Act carries out one action on a request: POST
// /console/requests/{id}/{action}, action one of approve, deny, extend,
// exempt, retry, complete, cancel, clear-flag. Every form needs a reason. Afterwards
// the browser goes back to the request page (303) with a message; a
// refused action shows the page again with the reason it was refused.
func (c *Console) Act() http.Handler {
	return c.authed(canAct, func(w http.ResponseWriter, r *http.Request, s session) {
		id, action := r.PathValue("id"), r.PathValue("action")
		if _, ok := flashes[action]; !ok || !erasure.ValidID(id) {
			c.errorPage(w, r, &s, http.StatusNotFound, "There is no such action.")
			return
		}
		err := c.act(r.Context(), id, action, s, r.PostForm)
		if err == nil {
			c.log.Info("console action", zap.String("action", action), zap.String("request_id", id), zap.String("user", s.User))
			http.Redirect(w, r, "/console/requests/"+id+"?done="+action, http.StatusSeeOther)
			return
		}
		code := erasure.ErrorCode(err)
		if code == erasure.EInternal || code == erasure.EUnavailable {
			c.internalError(w, r, &s, err)
			return
		}
		status := map[string]int{erasure.EInvalid: http.StatusUnprocessableEntity, erasure.EConflict: http.StatusConflict,
			erasure.ENotFound: http.StatusNotFound, erasure.EForbidden: http.StatusForbidden,
			erasure.ETooLarge: http.StatusRequestEntityTooLarge}[code]
		if status == 0 {
			status = http.StatusBadRequest
		}
		page := pageData{Error: "Not done: " + userMessage(err)}.withSession(&s)
		values := url.Values{}
		// The identifier's value is not sent back to the page.
		for _, k := range []string{"reason", "due", "connector", "basis", "outcome", "records", "evidence", "category", "kind"} {
			if v := r.PostForm.Get(k); v != "" {
				values.Set(k, v)
			}
		}
		c.showRequest(w, r, s, id, page, status, action, values)
	})
}

func (c *Console) act(ctx context.Context, id, action string, s session, f url.Values) error {
	actor, reason := s.actor(), f.Get("reason")
	connector := func() (string, error) {
		name := f.Get("connector")
		if !connectorNameRe.MatchString(name) {
			return "", erasure.Invalid("connector", "choose a system from the list")
		}
		return name, nil
	}
	var err error
	switch action {
	case "approve":
		_, err = c.coord.Approve(ctx, id, actor, reason)
	case "deny":
		_, err = c.coord.Deny(ctx, id, actor, reason)
	case "cancel":
		_, err = c.coord.Cancel(ctx, id, actor, reason)
	case "clear-flag":
		_, err = c.coord.ClearFlag(ctx, id, actor, reason)
	case "extend":
		day, perr := time.Parse(time.DateOnly, strings.TrimSpace(f.Get("due")))
		if perr != nil {
			return erasure.Invalid("due_at", "give a date such as 2026-08-31")
		}
		req, rerr := c.store.Request(ctx, id)
		if rerr != nil {
			return rerr
		}
		// The deadline keeps its time of day: the last allowed day is then
		// exactly the legal limit.
		due := req.DueAt.UTC()
		newDue := time.Date(day.Year(), day.Month(), day.Day(), due.Hour(), due.Minute(), due.Second(), due.Nanosecond(), time.UTC)
		_, err = c.coord.Extend(ctx, id, actor, reason, f.Get("category"), newDue)
	case "identifiers":
		kind, err := erasure.ParseKind(f.Get("kind"))
		if err != nil {
			return erasure.Invalid("kind", "%s", erasure.ErrorMessage(err))
		}
		_, err = c.coord.AddIdentifiers(ctx, id, actor, reason, map[erasure.Kind]string{kind: f.Get("value")})
		return err
	case "not-applicable":
		name, cerr := connector()
		if cerr != nil {
			return cerr
		}
		_, err = c.coord.NotApplicable(ctx, id, name, actor, reason)
	case "exempt":
		name, cerr := connector()
		if cerr != nil {
			return cerr
		}
		_, err = c.coord.Exempt(ctx, id, name, f.Get("basis"), actor, reason)
	case "retry":
		name, cerr := connector()
		if cerr != nil {
			return cerr
		}
		_, err = c.coord.RetryTask(ctx, id, name, actor, reason)
	case "complete":
		name, cerr := connector()
		if cerr != nil {
			return cerr
		}
		in, cerr := completion(f)
		if cerr != nil {
			return cerr
		}
		_, err = c.coord.CompleteTask(ctx, id, name, actor, in)
	}
	return err
}

// completion reads the complete form. Evidence is one item per line,
// "kind: value"; a line without a colon is a note.
func completion(f url.Values) (coordinator.Completion, error) {
	in := coordinator.Completion{Outcome: f.Get("outcome"), Reason: f.Get("reason")}
	if in.Outcome != bus.ResultErased && in.Outcome != bus.ResultNotFound {
		return in, erasure.Invalid("outcome", "choose erased or nothing found")
	}
	if s := strings.TrimSpace(f.Get("records")); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return in, erasure.Invalid("records", "give a whole number, 0 or more")
		}
		in.Records = n
	}
	for line := range strings.Lines(f.Get("evidence")) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		kind, value, ok := strings.Cut(line, ":")
		if !ok {
			kind, value = "note", line
		}
		in.Evidence = append(in.Evidence, erasure.Evidence{Kind: strings.TrimSpace(kind), Value: strings.TrimSpace(value)})
	}
	return in, nil
}

var fieldLabels = map[string]string{
	"reason": "Reason", "due_at": "New deadline", "basis": "Legal basis", "connector": "System", "category": "Kind of reason",
	"kind": "Kind of identifier", "identifiers": "Identifier",
	"outcome": "Outcome", "records": "Records erased", "evidence": "Evidence", "q": "Search",
	"status": "Status", "within": "Due within", "before": "Page",
}

// userMessage is an error as a person reads it: the field's label, then
// the coordinator's message (never internals: see erasure.ErrorMessage).
func userMessage(err error) string {
	msg := strings.TrimSuffix(erasure.ErrorMessage(err), ".")
	field := erasure.ErrorField(err)
	if field == "" {
		return capitalise(msg) + "."
	}
	label, ok := fieldLabels[field]
	if !ok && strings.HasPrefix(field, "identifiers.") {
		label, ok = "Identifier", true
	}
	if !ok && strings.HasPrefix(field, "evidence[") {
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(field, "evidence["), "]"))
		label, ok = "Evidence item "+strconv.Itoa(n+1), true
	}
	if !ok {
		label = field
	}
	return label + ": " + msg + "."
}

func capitalise(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}
