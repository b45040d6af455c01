package httpapi

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
)

// Config is the `config:` block of an http instance: a vendor's look-up,
// delete and job-status calls described as data. docs/connectors/http.md
// is the guide; every key is checked at start-up and a mistake names its
// key path ("lookups[0].request.path: {emial} is not a placeholder").
type Config struct {
	// Vendor names the vendor in errors and evidence ("HubSpot").
	Vendor string `yaml:"vendor"`
	// BaseURL is the API's address; request paths are relative to it.
	BaseURL string `yaml:"base_url"`
	// Auth is how requests carry the credentials: exactly one way.
	Auth Auth `yaml:"auth"`
	// Secrets are further credentials the requests name as
	// {secrets.<name>} (a project token in a query parameter).
	Secrets map[string]config.Secret `yaml:"secrets"`
	// RateLimit says how the vendor's 429s name their delay.
	RateLimit RateLimit `yaml:"rate_limit"`
	// Lookups find the person's records; without any, Delete is keyed by
	// the subject's identifiers and the vendor's answer is only an
	// acknowledgement.
	Lookups []Lookup `yaml:"lookups"`
	// Delete deletes the records found (by {id} or {ids}), or the person
	// by their identifiers when there are no lookups.
	Delete *Delete `yaml:"delete"`
	// JobStatus reads an asynchronous deletion job Delete started.
	JobStatus *JobStatus `yaml:"job_status"`

	compiled *desc
}

// Auth is one way of sending credentials.
type Auth struct {
	Bearer *config.Secret `yaml:"bearer"`
	Basic  *BasicAuth     `yaml:"basic"`
	Header *NamedSecret   `yaml:"header"`
	Query  *NamedSecret   `yaml:"query"`
	OAuth2 *OAuth2        `yaml:"oauth2"`
}

// BasicAuth is HTTP Basic authentication.
type BasicAuth struct {
	Username string        `yaml:"username"`
	Password config.Secret `yaml:"password"`
}

// NamedSecret is a credential sent in a header or query parameter Name.
type NamedSecret struct {
	Name  string        `yaml:"name"`
	Value config.Secret `yaml:"value"`
}

// OAuth2 is the OAuth 2.0 client credentials grant (RFC 6749 §4.4): a
// token fetched from TokenURL, sent as a Bearer token, fetched again
// before it expires or when the vendor refuses it.
type OAuth2 struct {
	TokenURL     string        `yaml:"token_url"`
	ClientID     string        `yaml:"client_id"`
	ClientSecret config.Secret `yaml:"client_secret"`
	Scopes       []string      `yaml:"scopes"`
	// CredentialsInBody sends the client id and secret in the form body
	// instead of HTTP Basic (RFC 6749 §2.3.1 allows both).
	CredentialsInBody bool `yaml:"credentials_in_body"`
}

// RateLimit says how to read the vendor's rate-limit answers.
type RateLimit struct {
	// ResetHeader names the header telling when the limit resets, read
	// when a 429 has no Retry-After.
	ResetHeader string `yaml:"reset_header"`
	// MinRetryAfter is the pause after a 429 that names no delay.
	MinRetryAfter time.Duration `yaml:"min_retry_after"`
}

// Request describes one HTTP call. Every string may hold placeholders.
type Request struct {
	Method  string            `yaml:"method"`
	Path    string            `yaml:"path"`
	Query   map[string]string `yaml:"query"`
	Headers map[string]string `yaml:"headers"`
	// JSON is a body sent as JSON; "{ids}" alone in a string becomes a
	// list of the ids.
	JSON any `yaml:"json"`
	// Form is a body sent as application/x-www-form-urlencoded.
	Form map[string]string `yaml:"form"`
}

// NotFound says which answers mean "no such record": a status, and, when
// Path is set, a body whose Path reads Equals (so that a 404 from a wrong
// base_url does not pass for the vendor's "not found").
type NotFound struct {
	Status []int  `yaml:"status"`
	Path   string `yaml:"path"`
	Equals string `yaml:"equals"`
}

// Lookup finds records of the person by one of their identifiers.
type Lookup struct {
	// Name names the lookup in evidence ("contact").
	Name     string    `yaml:"name"`
	Request  Request   `yaml:"request"`
	NotFound *NotFound `yaml:"not_found"`
	// Records is the path to the records in the answer (one or a list);
	// empty: the answer is the record.
	Records string `yaml:"records"`
	// ID is the path to a record's id within it.
	ID string `yaml:"id"`
	// Recoverable, when set, says where the records this lookup finds
	// can be restored from ("HubSpot's recycle bin, 90 days"): they are
	// still held, and an erasure that leaves one fails.
	Recoverable string `yaml:"recoverable"`
	// Pages reads further pages: the request names {next}.
	Pages *Pages `yaml:"pages"`
	// Gives makes the instance a resolver: identifier kinds found, each
	// read at a path within a record ({user_ids.crm: id}).
	Gives map[string]string `yaml:"gives"`
}

// Pages is a lookup's pagination: Next is the path to the next page's
// cursor (or URL parameter value) in an answer; Max bounds the pages read.
type Pages struct {
	Next string `yaml:"next"`
	Max  int    `yaml:"max"`
}

// Delete describes the deletion.
type Delete struct {
	Request Request `yaml:"request"`
	// BatchSize is how many ids one call takes, with {ids}.
	BatchSize int       `yaml:"batch_size"`
	NotFound  *NotFound `yaml:"not_found"`
	// Job is the path to the job reference in the answer of a vendor
	// that deletes asynchronously; JobStatus reads it.
	Job string `yaml:"job"`
	// Count is the path to how many records the vendor says it deleted.
	Count string `yaml:"count"`
}

// JobStatus reads a deletion job: Request names {job}.
type JobStatus struct {
	Request Request `yaml:"request"`
	// State is the path to the job's state in the answer.
	State string `yaml:"state"`
	// States maps each of the vendor's states to erased, running,
	// not_found, failed (a person must act) or retry (a new deletion is
	// filed).
	States map[string]string `yaml:"states"`
	// PollInterval is how long to wait between status checks (default 1h).
	PollInterval time.Duration `yaml:"poll_interval"`
}

// Outcomes a job state maps to.
const (
	stateErased   = "erased"
	stateRunning  = "running"
	stateNotFound = "not_found"
	stateFailed   = "failed"
	stateRetry    = "retry"
)

const (
	defaultPollInterval = time.Hour
	defaultMaxPages     = 10
	maxBatch            = 10000
)

var (
	nameRe       = regexp.MustCompile(`^[a-z0-9_]{1,40}$`)
	headerNameRe = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]{1,64}$`)
	methods      = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
)

// Validate checks the description, every mistake at once, each naming its
// key path, and compiles it.
func (c *Config) Validate() error {
	var p vendorkit.Problems
	c.Vendor = strings.TrimSpace(c.Vendor)
	if c.Vendor == "" || len(c.Vendor) > 60 || strings.ContainsAny(c.Vendor, "\n\r\t") {
		p.Add("vendor", "required: the vendor's name as staff know it (one line, at most 60 characters)")
	}
	p.BaseURL(&c.BaseURL, vendorkit.URLRule{Example: "https://api.vendor.example"})
	c.validateAuth(&p)
	for _, n := range slices.Sorted(maps.Keys(c.Secrets)) {
		if !nameRe.MatchString(n) {
			p.Add("secrets."+n, "a secret's name is lower-case letters, digits and '_'")
		}
		p.Secret("secrets."+n, c.Secrets[n], "a credential")
	}
	if c.RateLimit.ResetHeader != "" && !headerNameRe.MatchString(c.RateLimit.ResetHeader) {
		p.Add("rate_limit.reset_header", "%q is not a header name", c.RateLimit.ResetHeader)
	}
	if c.RateLimit.MinRetryAfter < 0 {
		p.Add("rate_limit.min_retry_after", "must not be negative")
	}
	d := &desc{vendor: c.Vendor}
	used := map[string]bool{}
	names := map[string]bool{}
	for i, l := range c.Lookups {
		key := fmt.Sprintf("lookups[%d]", i)
		lk := compileLookup(&p, key, l, used)
		if names[lk.name] {
			p.Add(key+".name", "%q names another lookup too", lk.name)
		}
		names[lk.name] = true
		d.lookups = append(d.lookups, lk)
	}
	if c.Delete == nil {
		p.Add("delete", "required: the request that deletes")
	} else {
		d.delete = compileDelete(&p, *c.Delete, len(c.Lookups) > 0, used)
	}
	switch js := c.JobStatus; {
	case js == nil && c.Delete != nil && c.Delete.Job != "":
		p.Add("job_status", "required: delete.job names a job, so Lethe must read its state")
	case js != nil && (c.Delete == nil || c.Delete.Job == ""):
		p.Add("job_status", "only used with delete.job (the path to the job reference)")
	case js != nil:
		d.status = compileStatus(&p, *js, used)
	}
	for n := range used {
		if s, ok := strings.CutPrefix(n, "secrets."); ok {
			if _, ok := c.Secrets[s]; !ok {
				p.Add("secrets", "{%s} is used but secrets.%s is not set", n, s)
			}
		}
	}
	for _, n := range slices.Sorted(maps.Keys(c.Secrets)) {
		if !used["secrets."+n] {
			p.Add("secrets."+n, "not used by any request")
		}
	}
	if err := p.Err(); err != nil {
		return err
	}
	c.compiled = d
	return nil
}

func (c *Config) validateAuth(p *vendorkit.Problems) {
	a := c.Auth
	n := 0
	for _, set := range []bool{a.Bearer != nil, a.Basic != nil, a.Header != nil, a.Query != nil, a.OAuth2 != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		p.Add("auth", "name exactly one of bearer, basic, header, query or oauth2")
		return
	}
	switch {
	case a.Bearer != nil:
		p.Secret("auth.bearer", *a.Bearer, "the API token")
	case a.Basic != nil:
		if a.Basic.Username == "" || strings.Contains(a.Basic.Username, ":") {
			p.Add("auth.basic.username", "required, without ':'")
		}
		p.Secret("auth.basic.password", a.Basic.Password, "the password or API secret")
	case a.Header != nil:
		if !headerNameRe.MatchString(a.Header.Name) || strings.EqualFold(a.Header.Name, "Content-Type") {
			p.Add("auth.header.name", "required: the header that carries the key (Api-Key)")
		}
		p.Secret("auth.header.value", a.Header.Value, "the API key")
	case a.Query != nil:
		if !nameRe.MatchString(strings.ToLower(a.Query.Name)) {
			p.Add("auth.query.name", "required: the query parameter that carries the key (api_key)")
		}
		p.Secret("auth.query.value", a.Query.Value, "the API key")
	case a.OAuth2 != nil:
		o := a.OAuth2
		p.BaseURL(&o.TokenURL, vendorkit.URLRule{Key: "auth.oauth2.token_url", Example: "https://auth.vendor.example/oauth/token"})
		if o.ClientID == "" {
			p.Add("auth.oauth2.client_id", "required")
		}
		p.Secret("auth.oauth2.client_secret", o.ClientSecret, "the client secret")
		for i, s := range o.Scopes {
			if s == "" || strings.ContainsAny(s, " \"\\") {
				p.Add(fmt.Sprintf("auth.oauth2.scopes[%d]", i), "a scope is one word")
			}
		}
	}
}

// Plan: with lookups, any one of the identifiers they look up by is
// enough and the system is searched by all the subject has; a lookup
// that gives identifiers makes the instance a resolver. Without lookups,
// the delete request needs every identifier it names.
func (c Config) Plan(string) connectors.Plan {
	d := c.compiled
	if d == nil {
		return connectors.Plan{}
	}
	if len(d.lookups) == 0 {
		var p connectors.Plan
		for _, k := range d.delete.kinds {
			p.Keys = append(p.Keys, connectors.Requirement{k})
			p.Uses = append(p.Uses, k)
		}
		return p
	}
	var either connectors.Requirement
	var p connectors.Plan
	for _, l := range d.lookups {
		if !slices.Contains(either, l.kind) {
			either = append(either, l.kind)
		}
		if len(l.gives) > 0 {
			p.ResolveBy = append(p.ResolveBy, l.kind)
			for _, g := range l.gives {
				p.Gives = append(p.Gives, g.kind)
			}
		}
	}
	p.Keys, p.Uses = []connectors.Requirement{either}, either
	return p
}

// desc is a validated description.
type desc struct {
	vendor  string
	lookups []lookup
	delete  deletion
	status  *jobStatus
}

type request struct {
	method  string
	path    template
	query   map[string]template
	headers map[string]template
	json    any // the YAML tree, strings as templates
	form    map[string]template
	names   []string
}

type notFound struct {
	status []int
	path   *path
	equals string
}

type lookup struct {
	name        string
	req         request
	notFound    *notFound
	records, id path
	kind        connectors.Kind
	recoverable string
	next        *path
	maxPages    int
	gives       []give
}

type give struct {
	kind connectors.Kind
	at   path
}

type deletion struct {
	req       request
	batch     int
	notFound  *notFound
	job       *path
	count     *path
	kinds     []connectors.Kind
	byRecords bool
}

type jobStatus struct {
	req    request
	state  path
	states map[string]string
	poll   time.Duration
}

func compileRequest(p *vendorkit.Problems, key string, r Request, used map[string]bool) request {
	out := request{method: strings.ToUpper(strings.TrimSpace(r.Method))}
	if !slices.Contains(methods, out.method) {
		p.Add(key+".method", "must be one of %s", strings.Join(methods, ", "))
	}
	add := func(k, s string) template {
		t, err := parseTemplate(s)
		if err != nil {
			p.Add(k, "%s", err)
		}
		for _, n := range t.names() {
			used[n] = true
			out.names = append(out.names, n)
		}
		return t
	}
	if !strings.HasPrefix(r.Path, "/") {
		p.Add(key+".path", "required: a path beginning with '/', relative to base_url")
	} else if u, err := url.Parse(strings.NewReplacer("{", "", "}", "").Replace(r.Path)); err != nil || u.RawQuery != "" || u.Fragment != "" || strings.Contains(r.Path, "?") {
		p.Add(key+".path", "must be a path only: put query parameters under query")
	}
	out.path = add(key+".path", r.Path)
	out.query = map[string]template{}
	for _, k := range slices.Sorted(maps.Keys(r.Query)) {
		out.query[k] = add(key+".query."+k, r.Query[k])
	}
	out.headers = map[string]template{}
	for _, k := range slices.Sorted(maps.Keys(r.Headers)) {
		if !headerNameRe.MatchString(k) || strings.EqualFold(k, "Authorization") || strings.EqualFold(k, "Host") {
			p.Add(key+".headers."+k, "not a header a description may set (credentials go under auth)")
		}
		out.headers[k] = add(key+".headers."+k, r.Headers[k])
	}
	if r.JSON != nil && r.Form != nil {
		p.Add(key, "json and form are two bodies: name one")
	}
	if (r.JSON != nil || r.Form != nil) && out.method == http.MethodGet {
		p.Add(key, "a GET sends no body")
	}
	var walk func(k string, v any) any
	walk = func(k string, v any) any {
		switch v := v.(type) {
		case string:
			return add(k, v)
		case map[string]any:
			m := map[string]any{}
			for _, kk := range slices.Sorted(maps.Keys(v)) {
				m[kk] = walk(k+"."+kk, v[kk])
			}
			return m
		case []any:
			l := make([]any, len(v))
			for i, x := range v {
				l[i] = walk(fmt.Sprintf("%s[%d]", k, i), x)
			}
			return l
		}
		return v
	}
	if r.JSON != nil {
		out.json = walk(key+".json", r.JSON)
	}
	if r.Form != nil {
		out.form = map[string]template{}
		for _, k := range slices.Sorted(maps.Keys(r.Form)) {
			out.form[k] = add(key+".form."+k, r.Form[k])
		}
	}
	return out
}

func compilePath(p *vendorkit.Problems, key, s string) path {
	pp, err := parsePath(s)
	if err != nil {
		p.Add(key, "%s", err)
	}
	return pp
}

func optionalPath(p *vendorkit.Problems, key, s string) *path {
	if s == "" {
		return nil
	}
	pp := compilePath(p, key, s)
	return &pp
}

func compileNotFound(p *vendorkit.Problems, key string, n *NotFound) *notFound {
	if n == nil {
		return nil
	}
	out := &notFound{status: n.Status, equals: n.Equals, path: optionalPath(p, key+".path", n.Path)}
	if len(n.Status) == 0 {
		p.Add(key+".status", "required: the statuses that mean no such record (404)")
	}
	for _, s := range n.Status {
		if s < 200 || s > 499 || s == http.StatusUnauthorized || s == http.StatusForbidden || s == http.StatusTooManyRequests {
			p.Add(key+".status", "%d cannot mean no such record (not 401, 403 or 429; 2xx to 4xx)", s)
		}
	}
	if (n.Path == "") != (n.Equals == "") {
		p.Add(key, "path and equals go together: the body's path must read equals")
	}
	return out
}

// noneOf adds a problem for each placeholder of r among names.
func noneOf(p *vendorkit.Problems, key string, r request, why string, names ...string) {
	for _, n := range r.names {
		if slices.Contains(names, n) {
			p.Add(key, "{%s} %s", n, why)
		}
	}
}

func identifierKinds(r request) []connectors.Kind {
	var out []connectors.Kind
	for _, n := range r.names {
		if k := kindOf(n); k != "" && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

func compileLookup(p *vendorkit.Problems, key string, l Lookup, used map[string]bool) lookup {
	out := lookup{name: strings.TrimSpace(l.Name), recoverable: strings.TrimSpace(l.Recoverable)}
	if out.name == "" || len(out.name) > 40 {
		p.Add(key+".name", "required: what the lookup finds, in a few words (contact)")
	}
	out.req = compileRequest(p, key+".request", l.Request, used)
	noneOf(p, key+".request", out.req, "is not known while looking up", "id", "ids", "job")
	switch ks := identifierKinds(out.req); len(ks) {
	case 1:
		out.kind = ks[0]
	default:
		p.Add(key+".request", "a lookup names exactly one of the person's identifiers ({email}, {phone} or {user_ids.<name>}); this one names %d", len(ks))
	}
	out.notFound = compileNotFound(p, key+".not_found", l.NotFound)
	out.records = compilePath(p, key+".records", l.Records)
	if l.ID == "" {
		p.Add(key+".id", "required: the path to a record's id within it (id)")
	}
	out.id = compilePath(p, key+".id", l.ID)
	hasNext := slices.Contains(out.req.names, "next")
	switch {
	case l.Pages == nil && hasNext:
		p.Add(key+".request", "{next} is only known with pages")
	case l.Pages != nil && !hasNext:
		p.Add(key+".pages", "the request must name {next} (the next page's cursor)")
	case l.Pages != nil:
		if l.Pages.Next == "" {
			p.Add(key+".pages.next", "required: the path to the next page's cursor")
		}
		n := compilePath(p, key+".pages.next", l.Pages.Next)
		out.next = &n
		out.maxPages = l.Pages.Max
		if out.maxPages == 0 {
			out.maxPages = defaultMaxPages
		}
		if out.maxPages < 1 || out.maxPages > 1000 {
			p.Add(key+".pages.max", "from 1 to 1000")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(l.Gives)) {
		kind, err := connectors.ParseKind(k)
		if err != nil || kind.Namespace() == "" {
			p.Add(key+".gives."+k, "%q is not a user_ids.<name> kind", k)
			continue
		}
		out.gives = append(out.gives, give{kind: kind, at: compilePath(p, key+".gives."+k, l.Gives[k])})
	}
	return out
}

func compileDelete(p *vendorkit.Problems, d Delete, byRecords bool, used map[string]bool) deletion {
	out := deletion{byRecords: byRecords, batch: d.BatchSize}
	out.req = compileRequest(p, "delete.request", d.Request, used)
	noneOf(p, "delete.request", out.req, "is only known while reading a job's status", "job", "next")
	ids := slices.Contains(out.req.names, "ids")
	id := slices.Contains(out.req.names, "id")
	out.kinds = identifierKinds(out.req)
	switch {
	case byRecords && !id && !ids:
		p.Add("delete.request", "with lookups, the request deletes the records found: name {id} (one a call) or {ids} (batch_size a call)")
	case byRecords && len(out.kinds) > 0:
		p.Add("delete.request", "with lookups, the request deletes by the records' {id} or {ids}, not by the person's identifiers")
	case !byRecords && (id || ids):
		p.Add("delete.request", "{id} and {ids} are the ids lookups find; without lookups, name the person's identifiers ({email}, {user_ids.<name>})")
	case !byRecords && len(out.kinds) == 0:
		p.Add("delete.request", "without lookups, the request must name the person's identifiers ({email}, {phone}, {user_ids.<name>})")
	case id && ids:
		p.Add("delete.request", "name {id} or {ids}, not both")
	}
	switch {
	case ids && (d.BatchSize < 1 || d.BatchSize > maxBatch):
		p.Add("delete.batch_size", "required with {ids}: how many ids one call takes (1 to %d, as the vendor documents)", maxBatch)
	case !ids && d.BatchSize != 0:
		p.Add("delete.batch_size", "only used with {ids}")
	}
	if !ids {
		out.batch = 1
	}
	out.notFound = compileNotFound(p, "delete.not_found", d.NotFound)
	out.job = optionalPath(p, "delete.job", d.Job)
	out.count = optionalPath(p, "delete.count", d.Count)
	if out.job != nil && out.job.hasWildcard() {
		p.Add("delete.job", "a job reference is one value: no [*]")
	}
	return out
}

func compileStatus(p *vendorkit.Problems, js JobStatus, used map[string]bool) *jobStatus {
	out := &jobStatus{poll: js.PollInterval, states: map[string]string{}}
	out.req = compileRequest(p, "job_status.request", js.Request, used)
	if !slices.Contains(out.req.names, "job") {
		p.Add("job_status.request", "must name {job} (the job reference delete.job reads)")
	}
	forbidden := []string{"id", "ids", "next"}
	for _, n := range out.req.names {
		if kindOf(n) != "" {
			forbidden = append(forbidden, n)
		}
	}
	noneOf(p, "job_status.request", out.req, "is not known while reading a job's status (Lethe keeps only the job reference)", forbidden...)
	if js.State == "" {
		p.Add("job_status.state", "required: the path to the job's state in the answer")
	}
	out.state = compilePath(p, "job_status.state", js.State)
	targets := []string{stateErased, stateRunning, stateNotFound, stateFailed, stateRetry}
	erased := false
	for _, s := range slices.Sorted(maps.Keys(js.States)) {
		t := js.States[s]
		if !slices.Contains(targets, t) {
			p.Add("job_status.states."+s, "%q is not one of %s", t, strings.Join(targets, ", "))
		}
		erased = erased || t == stateErased
		out.states[s] = t
	}
	if !erased {
		p.Add("job_status.states", "required: map the vendor's states, one of them to erased")
	}
	p.Interval("job_status.poll_interval", &out.poll, defaultPollInterval)
	return out
}
