// Package s3 is the connector that erases a data subject's objects from a
// bucket of any S3-compatible store (AWS S3, MinIO, Ceph, R2…), found by key
// templates such as exports/{email}.csv and prefixes such as uploads/{email}/.
// In a versioned bucket every version and delete marker is removed by
// VersionId, so nothing is left behind a delete marker.
package s3

import (
	"context"
	"fmt"
	"regexp"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/internal/idtemplate"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
)

func init() {
	// S3 takes 3,500 writes and 5,500 reads per second per prefix; one
	// erasure makes a few calls per template, and a SlowDown pauses the
	// instance anyway.
	connectors.Register("s3", "Objects named after the subject in an S3-compatible bucket, every version deleted",
		connectors.Limits{Concurrency: 8, RatePerSecond: 500, Burst: 50}, build, connectors.Discovers())
}

// Config is the s3 connector's configuration:
//
//	bucket: shop-uploads
//	region: eu-west-1
//	access_key_id: {env: SHOP_S3_ACCESS_KEY_ID}
//	secret_access_key: {env: SHOP_S3_SECRET_ACCESS_KEY}
//	keys: ["exports/{email}.csv", "avatars/{user_id}.png"]
//	prefixes: ["uploads/{email}/"]
type Config struct {
	Bucket string `yaml:"bucket"`
	// Region signs requests; required for AWS, default us-east-1 with base_url.
	Region string `yaml:"region"`
	// BaseURL is the store's endpoint, for MinIO, Ceph, R2, proxies and
	// tests; default AWS's regional endpoint https://s3.<region>.amazonaws.com.
	BaseURL string `yaml:"base_url"`
	// UsePathStyle addresses the bucket as base_url/bucket instead of
	// bucket.host: MinIO and most self-hosted stores need it.
	UsePathStyle    bool          `yaml:"use_path_style"`
	AccessKeyID     config.Secret `yaml:"access_key_id"`
	SecretAccessKey config.Secret `yaml:"secret_access_key"`
	// Versioning is auto (ask the bucket, the default), versioned or
	// unversioned (for stores without GetBucketVersioning).
	Versioning string `yaml:"versioning"`
	// BypassGovernanceRetention deletes versions under Object Lock in
	// governance mode (needs s3:BypassGovernanceRetention).
	BypassGovernanceRetention bool `yaml:"bypass_governance_retention"`
	// UserIDSystem is the subject.user_ids key {user_id} stands for;
	// default the connector instance's name.
	UserIDSystem string `yaml:"user_id_system"`
	// Keys are exact object keys with {email}, {phone} and {user_id}.
	Keys []string `yaml:"keys"`
	// Prefixes erase every object whose key starts with them; each
	// placeholder must be followed by a "/".
	Prefixes []string `yaml:"prefixes"`
	// Ignore lists key prefixes or shapes (as `lethe discover` prints
	// them) of objects named after people that are left alone on
	// purpose, each with its reason.
	Ignore []connectors.Ignore `yaml:"ignore"`
}

// Versioning modes.
const (
	versioningAuto        = "auto"
	versioningVersioned   = "versioned"
	versioningUnversioned = "unversioned"
)

// bucketRe is loose on purpose: S3-compatible stores accept names AWS does
// not (upper case, underscores); it only keeps out what would change the URL.
var bucketRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$`)

// Validate checks the config at start-up.
func (c *Config) Validate() error {
	var p vendorkit.Problems
	switch {
	case c.Bucket == "":
		p.Add("bucket", "required (the bucket's name)")
	case !bucketRe.MatchString(c.Bucket):
		p.Add("bucket", "must be a bucket name (letters, digits, '.', '-', '_'), not a URL or path")
	}
	if c.BaseURL == "" && c.Region == "" {
		p.Add("region", "required for AWS (e.g. eu-west-1); set base_url for other stores")
	}
	if c.BaseURL != "" {
		// S3-compatible stores inside a cluster (MinIO) are often plain
		// http; SigV4 never sends the secret key itself.
		p.BaseURL(&c.BaseURL, vendorkit.URLRule{Example: "https://minio.internal:9000", AllowHTTP: true})
	}
	p.Secret("access_key_id", c.AccessKeyID, "the access key id")
	p.Secret("secret_access_key", c.SecretAccessKey, "the secret access key")
	switch c.Versioning {
	case "", versioningAuto, versioningVersioned, versioningUnversioned:
	default:
		p.Add("versioning", "%q is not auto, versioned or unversioned", c.Versioning)
	}
	if len(c.Keys) == 0 && len(c.Prefixes) == 0 {
		p.Add("keys, prefixes", "at least one key or prefix template is required")
	}
	for i, k := range c.Keys {
		if _, err := parseTemplate(k, false); err != nil {
			p.Add(fmt.Sprintf("keys[%d]", i), "%v", err)
		} else if slices.Contains(c.Keys[:i], k) {
			p.Add(fmt.Sprintf("keys[%d]", i), "%q is listed twice", k)
		}
	}
	for i, pre := range c.Prefixes {
		if _, err := parseTemplate(pre, true); err != nil {
			p.Add(fmt.Sprintf("prefixes[%d]", i), "%v", err)
		} else if slices.Contains(c.Prefixes[:i], pre) {
			p.Add(fmt.Sprintf("prefixes[%d]", i), "%q is listed twice", pre)
		}
	}
	p.Include(connectors.ValidateIgnores(c.Ignore))
	return p.Err()
}

// Plan: every kind of identifier the templates name is needed, each its
// own requirement ({user_id} is user_ids.<user_id_system>): with one
// missing, the objects named by it could not be found.
func (c Config) Plan(name string) connectors.Plan {
	var parts []idtemplate.Part
	for i, text := range append(slices.Clone(c.Keys), c.Prefixes...) {
		t, err := parseTemplate(text, i >= len(c.Keys))
		if err != nil {
			continue // Validate has refused it
		}
		parts = append(parts, t.parts...)
	}
	return connectors.Plan{Keys: idtemplate.Keys(parts, vendorkit.System(c.UserIDSystem, name))}
}

type connector struct {
	api        *awss3.Client
	bucket     string
	versioning string
	bypass     bool
	system     string
	templates  []template
	ignore     []connectors.Ignore
}

func build(_ context.Context, name string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	akid, secret, err := vendorkit.RevealPair(deps, "access_key_id", cfg.AccessKeyID, "secret_access_key", cfg.SecretAccessKey)
	if err != nil {
		return nil, err
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1" // what MinIO and most S3-compatible stores expect
	}
	hc := vendorkit.HTTPClient(deps)
	api := awss3.New(awss3.Options{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(akid, secret, ""),
		UsePathStyle: cfg.UsePathStyle,
		HTTPClient:   hc,
		// One attempt per call: the runtime retries the whole erase with
		// its own backoff and honours the pause we ask for on SlowDown.
		Retryer: aws.NopRetryer{},
	}, func(o *awss3.Options) {
		if cfg.BaseURL != "" {
			o.BaseEndpoint = aws.String(cfg.BaseURL)
		}
	})
	c := &connector{
		api:        api,
		bucket:     cfg.Bucket,
		versioning: cfg.Versioning,
		bypass:     cfg.BypassGovernanceRetention,
		system:     vendorkit.System(cfg.UserIDSystem, name),
		ignore:     cfg.Ignore,
	}
	if c.versioning == "" {
		c.versioning = versioningAuto
	}
	for _, k := range cfg.Keys {
		t, err := parseTemplate(k, false)
		if err != nil { // Validate has run; kept for callers that skip it
			return nil, fmt.Errorf("keys: %w", err)
		}
		c.templates = append(c.templates, t)
	}
	for _, p := range cfg.Prefixes {
		t, err := parseTemplate(p, true)
		if err != nil {
			return nil, fmt.Errorf("prefixes: %w", err)
		}
		c.templates = append(c.templates, t)
	}
	return c, nil
}

// expansion is one template expanded for one subject.
type expansion struct {
	t       *template
	key     string // the exact key, or the prefix; personal data
	missing string // placeholder the subject has no value for: skip
}

// prepare expands every template for s, then asks whether the bucket is
// versioned. Identifiers are all checked before any call, so a refused
// subject never leaves a partial erasure.
func (c *connector) prepare(ctx context.Context, s connectors.Subject) (exps []expansion, versioned bool, state string, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, "", err
	}
	values := idtemplate.Values(s, c.system)
	exps = make([]expansion, len(c.templates))
	for i := range c.templates {
		t := &c.templates[i]
		key, missing, err := t.expand(values)
		if err != nil {
			return nil, false, "", connectors.Permanent(fmt.Errorf("%s: %w", t.text, err))
		}
		exps[i] = expansion{t: t, key: key, missing: missing}
	}
	if err := c.searchable(exps); err != nil {
		return nil, false, "", err
	}
	versioned, state, err = c.bucketVersioning(ctx)
	return exps, versioned, state, err
}

// Erase deletes every object the templates name for s. In a versioned
// bucket it deletes each version and delete marker by VersionId; a plain
// delete would only hide the data behind a new delete marker. Records
// counts objects (distinct keys) removed.
func (c *connector) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	exps, versioned, state, err := c.prepare(ctx, s)
	if err != nil {
		return connectors.Outcome{}, err
	}
	evidence := []connectors.Evidence{{Kind: "bucket", Value: c.bucket + " (versioning: " + state + ")"}}
	var total, locked int64
	var lockedIn []string
	found := false
	for _, e := range exps {
		if e.missing != "" {
			evidence = append(evidence, c.skipped(e))
			continue
		}
		n := tally{versioned: versioned}
		var pending []entry // listed, not yet deleted: full batches go at once
		err := c.list(ctx, versioned, e, func(page []entry) error {
			found = found || len(page) > 0
			n.count(page)
			pending = append(pending, page...)
			for len(pending) >= maxBatch {
				if err := c.delete(ctx, versioned, e, pending[:maxBatch], &n); err != nil {
					return err
				}
				pending = pending[maxBatch:]
			}
			return nil
		})
		if err == nil && len(pending) > 0 {
			err = c.delete(ctx, versioned, e, pending, &n)
		}
		if err != nil {
			return connectors.Outcome{}, err
		}
		total += n.objects
		evidence = append(evidence, connectors.Evidence{Kind: e.t.kind(), Value: e.t.text + ": " + n.removed()})
		if n.locked > 0 {
			locked += n.locked
			lockedIn = append(lockedIn, e.t.text)
		}
	}
	if locked > 0 {
		// Everything else is gone; what is left waits for its retention to
		// end or a hold to be lifted, which no retry can hasten.
		return connectors.Outcome{}, connectors.Permanentf(
			"S3 bucket %s: %s under %v protected by Object Lock (retention or legal hold) and could not be deleted; "+
				"the rest was erased. Lift the legal hold, set bypass_governance_retention for governance mode, "+
				"or record an exemption until the retention date", c.bucket, connectors.Plural(locked, "version"), lockedIn)
	}
	if !found {
		return connectors.NotFound(evidence...), nil
	}
	return connectors.Erased(total, evidence...), nil
}

// Verify lists the templates again, versions and delete markers included,
// and reports how many objects (keys) of s remain.
func (c *connector) Verify(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	exps, versioned, _, err := c.prepare(ctx, s)
	if err != nil {
		return connectors.Verification{}, err
	}
	var v connectors.Verification
	for _, e := range exps {
		if e.missing != "" {
			v.Evidence = append(v.Evidence, c.skipped(e))
			continue
		}
		n := tally{versioned: versioned}
		if err := c.list(ctx, versioned, e, func(page []entry) error { n.count(page); return nil }); err != nil {
			return connectors.Verification{}, err
		}
		v.Remaining += n.objects
		v.Evidence = append(v.Evidence, connectors.Evidence{Kind: e.t.kind(), Value: e.t.text + ": " + n.remaining()})
	}
	return v, nil
}

// searchable refuses a subject for whom no template could be expanded:
// the plan makes the runtime wait for every identifier the templates
// name, so this happens only when the instance's keys were changed, and
// a search that did not happen is never "not found" or "clean".
func (c *connector) searchable(exps []expansion) error {
	for _, e := range exps {
		if e.missing == "" {
			return nil
		}
	}
	return connectors.Permanentf("the subject has none of the identifiers the key and prefix templates name: nothing could be searched (check the instance's keys)")
}

func (c *connector) skipped(e expansion) connectors.Evidence {
	return idtemplate.Skipped(e.t.kind(), e.t.text, e.missing, c.system)
}

// bucketVersioning tells whether objects must be listed and deleted by
// version. Asked on every erase: versioning can be switched on at any time.
func (c *connector) bucketVersioning(ctx context.Context) (versioned bool, state string, err error) {
	switch c.versioning {
	case versioningVersioned:
		return true, "versioned (configured)", nil
	case versioningUnversioned:
		return false, "unversioned (configured)", nil
	}
	out, err := c.api.GetBucketVersioning(ctx, &awss3.GetBucketVersioningInput{Bucket: &c.bucket})
	if err != nil {
		return false, "", c.classify(ctx, "GetBucketVersioning", "", err)
	}
	switch out.Status {
	case types.BucketVersioningStatusEnabled, types.BucketVersioningStatusSuspended:
		// Suspended still keeps the versions written while it was on.
		return true, string(out.Status), nil
	}
	return false, "never enabled", nil
}

// entry is one object version, delete marker or (unversioned) object.
type entry struct {
	key       string
	versionID string // empty when unversioned
	marker    bool
}

// list calls fn with each page of e's objects: every version and delete
// marker when versioned. fn may delete what it was given: S3 pages by
// position, so the next page starts after the last entry seen whether or
// not it still exists.
func (c *connector) list(ctx context.Context, versioned bool, e expansion, fn func([]entry) error) error {
	keep := func(key string) bool { return e.t.prefix || key == e.key }
	failed := func(op string) func(error) error {
		return func(err error) error { return c.classify(ctx, op, e.t.text, err) }
	}
	if !versioned {
		p := awss3.NewListObjectsV2Paginator(c.api, &awss3.ListObjectsV2Input{Bucket: &c.bucket, Prefix: aws.String(e.key)})
		return eachPage(ctx, p, failed("ListObjectsV2"), func(out *awss3.ListObjectsV2Output) []entry {
			var page []entry
			for _, o := range out.Contents {
				if k := aws.ToString(o.Key); keep(k) {
					page = append(page, entry{key: k})
				}
			}
			return page
		}, fn)
	}
	p := awss3.NewListObjectVersionsPaginator(c.api, &awss3.ListObjectVersionsInput{Bucket: &c.bucket, Prefix: aws.String(e.key)})
	return eachPage(ctx, p, failed("ListObjectVersions"), func(out *awss3.ListObjectVersionsOutput) []entry {
		var page []entry
		for _, v := range out.Versions {
			if k := aws.ToString(v.Key); keep(k) {
				page = append(page, entry{key: k, versionID: versionID(v.VersionId)})
			}
		}
		for _, m := range out.DeleteMarkers {
			if k := aws.ToString(m.Key); keep(k) {
				page = append(page, entry{key: k, versionID: versionID(m.VersionId), marker: true})
			}
		}
		// Versions and markers come in two lists; key order is what the
		// tally counts objects by.
		slices.SortStableFunc(page, func(a, b entry) int { return cmpString(a.key, b.key) })
		return page
	}, fn)
}

// pager is what the SDK's list paginators have in common.
type pager[O any] interface {
	HasMorePages() bool
	NextPage(context.Context, ...func(*awss3.Options)) (O, error)
}

// eachPage calls fn with the entries read picks from each page of p; an
// error asking for a page goes through failed.
func eachPage[O any](ctx context.Context, p pager[O], failed func(error) error, read func(O) []entry, fn func([]entry) error) error {
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return failed(err)
		}
		if err := fn(read(out)); err != nil {
			return err
		}
	}
	return nil
}

// versionID is the id to delete a version by: objects written before
// versioning was enabled have the id "null".
func versionID(id *string) string {
	if id == nil || *id == "" {
		return "null"
	}
	return *id
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// maxBatch is DeleteObjects' limit on keys per request.
const maxBatch = 1000

// delete removes entries with DeleteObjects in quiet mode, at most 1,000
// a request, and reads the per-key errors S3 reports with a 200.
func (c *connector) delete(ctx context.Context, versioned bool, e expansion, entries []entry, n *tally) error {
	for batch := range slices.Chunk(entries, maxBatch) {
		objs := make([]types.ObjectIdentifier, len(batch))
		for i, en := range batch {
			objs[i] = types.ObjectIdentifier{Key: aws.String(en.key)}
			if versioned {
				objs[i].VersionId = aws.String(en.versionID)
			}
		}
		in := &awss3.DeleteObjectsInput{
			Bucket: &c.bucket,
			Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)},
		}
		if c.bypass {
			in.BypassGovernanceRetention = aws.Bool(true)
		}
		// Content-MD5 as well as the SDK's CRC32: older S3-compatible
		// stores refuse a multi-object delete without it.
		out, err := c.api.DeleteObjects(ctx, in, awss3.WithAPIOptions(smithyhttp.AddContentChecksumMiddleware))
		if err != nil {
			return c.classify(ctx, "DeleteObjects", e.t.text, err)
		}
		failed := map[int]bool{}
		var retry, denied int64
		var code string
		for _, ke := range out.Errors {
			i := slices.IndexFunc(batch, func(en entry) bool {
				return en.key == aws.ToString(ke.Key) && (!versioned || en.versionID == versionID(ke.VersionId))
			})
			if i >= 0 {
				failed[i] = true
			}
			switch {
			case objectLocked(aws.ToString(ke.Code), aws.ToString(ke.Message)):
				n.locked++
			case deniedCodes[aws.ToString(ke.Code)]:
				denied++
			default:
				retry++
				if code == "" {
					code = safeCode(aws.ToString(ke.Code))
				}
			}
		}
		for i, en := range batch {
			if failed[i] {
				continue
			}
			switch {
			case en.marker:
				n.markers++
			default:
				n.versions++
			}
		}
		if denied > 0 {
			return connectors.Permanentf("S3 DeleteObjects on bucket %s (%s): %s refused with AccessDenied; "+
				"the credentials need s3:DeleteObject and s3:DeleteObjectVersion", c.bucket, e.t.text, connectors.Plural(denied, "deletion"))
		}
		if retry > 0 {
			return connectors.Retryable(fmt.Errorf("S3 DeleteObjects on bucket %s (%s): %s failed (%s); retrying erases the rest",
				c.bucket, e.t.text, connectors.Plural(retry, "deletion"), code), 0)
		}
	}
	return nil
}

// tally counts what one template found and removed.
type tally struct {
	versioned         bool
	objects           int64 // distinct keys listed
	versions, markers int64 // deleted
	locked            int64
	lastKey           string
	seen              int64 // entries listed
	seenMarkers       int64
}

// count notes a listed page; keys arrive in order, so a key spanning pages
// is counted once.
func (n *tally) count(page []entry) {
	for _, e := range page {
		if n.seen == 0 || e.key != n.lastKey {
			n.objects++
			n.lastKey = e.key
		}
		n.seen++
		if e.marker {
			n.seenMarkers++
		}
	}
}

func (n *tally) removed() string {
	s := connectors.Plural(n.objects, "object")
	if n.versioned {
		s += fmt.Sprintf(" (%s, %s)", connectors.Plural(n.versions, "version"), connectors.Plural(n.markers, "delete marker"))
	}
	if n.locked > 0 {
		s += fmt.Sprintf("; %s kept by Object Lock", connectors.Plural(n.locked, "version"))
	}
	return s
}

func (n *tally) remaining() string {
	s := connectors.Plural(n.objects, "object") + " remaining"
	if n.versioned {
		s += fmt.Sprintf(" (%s, %s)", connectors.Plural(n.seen-n.seenMarkers, "version"), connectors.Plural(n.seenMarkers, "delete marker"))
	}
	return s
}
