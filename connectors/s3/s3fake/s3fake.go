// Package s3fake is a local S3-compatible store for tests: the few S3
// REST calls the s3 connector makes, path-style, with S3's XML bodies and
// error codes, versioned buckets, Object Lock, S3's throttling answer and
// faults to inject.
//
//	f := s3fake.Start(t, s3fake.Options{})
//	f.Seed(connectors.Subject{Email: "ada@example.com", UserIDs: map[string]string{"app": "u1"}})
//	c := connectortest.Build(t, "s3", "files", f.Config())
package s3fake

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// What every fake starts with: a versioned bucket, and one access key.
const (
	DefaultBucket    = "lethe-fake"
	DefaultAccessKey = "AKIDLETHEFAKE"
	// SecretKey is what Config sends; signatures are not checked.
	SecretKey = "wJalrXUtnFEMI-fake-s3cr3t"
)

// Options tunes a fake: its rate limit refuses requests as S3 throttles,
// 503 SlowDown (not 429), no Retry-After (S3 documents 5,500 reads and
// 3,500 writes per second per prefix). Polls is unused: S3 deletes
// synchronously.
type Options = fakevendor.Options

// Fake is the subset of the S3 REST API the connector uses, path-style
// (/{bucket}?…), answering with S3's XML bodies and error codes:
//
//	GET  /{bucket}?versioning                          GetBucketVersioning
//	GET  /{bucket}?versions&prefix=&key-marker=&version-id-marker=&max-keys=   ListObjectVersions
//	GET  /{bucket}?list-type=2&prefix=&continuation-token=&max-keys=          ListObjectsV2
//	POST /{bucket}?delete   <Delete><Object><Key/><VersionId/></Object>…<Quiet/></Delete>
//
// Signatures are not checked, but every request must carry a SigV4
// Authorization header naming a known access key. Versions are listed
// newest first per key and markers are positions, as S3 does, so a page
// may be deleted before the next is asked for.
type Fake struct {
	fakevendor.Controls

	mu      sync.Mutex
	buckets map[string]*fakeBucket
	seq     int
	key     *fakevendor.Key // the account's access key id, which Config carries
	keys    map[string]bool // access key ids accepted besides key
	batches []int           // size of each DeleteObjects request
	// pageSize caps list pages (S3: 1,000; it may return fewer).
	pageSize *fakevendor.Setting[int]
	// failDelete, if set, makes DeleteObjects report a per-key error for
	// the entries it returns a code for.
	failDelete func(key string) (code, message string)
}

var _ connectortest.RecoverableVendor = (*Fake)(nil)

type fakeBucket struct {
	versioning string                    // "", "Enabled" or "Suspended"
	objects    map[string][]*fakeVersion // newest first
}

type fakeVersion struct {
	id     string // "null" for versions written while versioning was off
	seq    int    // order of writing, for markers
	marker bool
	lock   string // "", "governance", "compliance", "legal-hold"
}

// Start starts a fake holding DefaultBucket (versioning Enabled) and
// accepting DefaultAccessKey, that stops when the test ends.
func Start(t testing.TB, opt Options) *Fake {
	t.Helper()
	f := &Fake{buckets: map[string]*fakeBucket{}, key: fakevendor.NewKey(DefaultAccessKey), keys: map[string]bool{}, pageSize: fakevendor.NewSetting(1000)}
	f.AddBucket(DefaultBucket, "Enabled")
	srv := fakevendor.Start(t, opt, fakevendor.Vendor{TooMany: SlowDown(""), Auth: fakevendor.Auth{OK: f.authorized, Refuse: Refused, Keys: []*fakevendor.Key{f.key}}})
	f.Controls = srv.Controls()
	for _, p := range []string{"/{bucket}", "/{bucket}/{$}"} {
		srv.Handle("GET "+p, f.route)
		srv.Handle("POST "+p, f.route)
	}
	return f
}

// Refused is S3's answer to a request without credentials, or with an
// access key it does not know.
func Refused(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") == "" {
		WriteError(w, http.StatusForbidden, "AccessDenied", "Access Denied")
		return
	}
	WriteError(w, http.StatusForbidden, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
}

func (f *Fake) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(h, "AWS4-HMAC-SHA256 Credential=")
	if !ok {
		return false
	}
	akid, _, _ := strings.Cut(rest, "/")
	f.mu.Lock()
	defer f.mu.Unlock()
	return akid == f.key.Get() || f.keys[akid]
}

// route answers a request as S3 would; faults can call it to let a
// request through (and then spoil its answer).
func (f *Fake) route(w http.ResponseWriter, r *http.Request) {
	name := strings.Trim(r.URL.Path, "/")
	q := r.URL.Query()
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.buckets[name]
	if !ok {
		WriteError(w, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist")
		return
	}
	switch {
	case r.Method == http.MethodGet && q.Has("versioning"):
		writeXML(w, http.StatusOK, versioningConfiguration{Status: b.versioning})
	case r.Method == http.MethodGet && q.Has("versions"):
		f.listVersions(w, name, b, q)
	case r.Method == http.MethodGet && q.Get("list-type") == "2":
		f.listV2(w, name, b, q)
	case r.Method == http.MethodPost && q.Has("delete"):
		f.deleteObjects(w, r, b)
	default:
		WriteError(w, http.StatusNotImplemented, "NotImplemented", "A header or query you provided implies functionality that is not implemented.")
	}
}

// --- XML bodies ---

type versioningConfiguration struct {
	XMLName xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ VersioningConfiguration"`
	Status  string   `xml:"Status,omitempty"`
}

type listVersionsResult struct {
	XMLName             xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListVersionsResult"`
	Name                string
	Prefix              string
	KeyMarker           string
	VersionIdMarker     string
	MaxKeys             int
	IsTruncated         bool
	NextKeyMarker       string `xml:",omitempty"`
	NextVersionIdMarker string `xml:",omitempty"`
	Entries             []any  // xmlVersion and xmlDeleteMarker, in S3's order
}

type xmlVersion struct {
	XMLName      xml.Name `xml:"Version"`
	Key          string
	VersionId    string
	IsLatest     bool
	LastModified string
	ETag         string
	Size         int
	StorageClass string
}

type xmlDeleteMarker struct {
	XMLName      xml.Name `xml:"DeleteMarker"`
	Key          string
	VersionId    string
	IsLatest     bool
	LastModified string
}

type listBucketResult struct {
	XMLName               xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListBucketResult"`
	Name                  string
	Prefix                string
	KeyCount              int
	MaxKeys               int
	IsTruncated           bool
	ContinuationToken     string `xml:",omitempty"`
	NextContinuationToken string `xml:",omitempty"`
	Contents              []xmlObject
}

type xmlObject struct {
	Key          string
	LastModified string
	ETag         string
	Size         int
	StorageClass string
}

// DeleteRequest is the body of DeleteObjects.
type DeleteRequest struct {
	XMLName xml.Name `xml:"Delete"`
	Objects []struct {
		Key       string
		VersionId string
	} `xml:"Object"`
	Quiet bool
}

// ParseDelete reads a DeleteObjects body.
func ParseDelete(body []byte) (DeleteRequest, error) {
	var d DeleteRequest
	err := xml.Unmarshal(body, &d)
	return d, err
}

// ContentMD5 is the Content-MD5 header that goes with body.
func ContentMD5(body []byte) string {
	sum := md5.Sum(body)
	return base64.StdEncoding.EncodeToString(sum[:])
}

type deleteResult struct {
	XMLName xml.Name     `xml:"http://s3.amazonaws.com/doc/2006-03-01/ DeleteResult"`
	Deleted []xmlDeleted `xml:"Deleted"`
	Errors  []xmlDelErr  `xml:"Error"`
}

type xmlDeleted struct {
	Key                   string
	VersionId             string `xml:",omitempty"`
	DeleteMarker          bool   `xml:",omitempty"`
	DeleteMarkerVersionId string `xml:",omitempty"`
}

type xmlDelErr struct {
	Key       string
	VersionId string `xml:",omitempty"`
	Code      string
	Message   string
}

type xmlError struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string
	Message   string
	RequestId string
	HostId    string
}

const lastModified = "2024-05-01T10:00:00.000Z"

func writeXML(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("x-amz-request-id", "FAKEREQUEST0001")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(v)
}

// WriteError writes S3's XML error document.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	writeXML(w, status, xmlError{Code: code, Message: message, RequestId: "FAKEREQUEST0001", HostId: "fakehost"})
}

// --- faults, as S3 and S3-compatible stores send them ---

// SlowDown is S3's throttling answer: 503 SlowDown, with no Retry-After
// unless retryAfter is set (some S3-compatible stores send one).
func SlowDown(retryAfter string) fakevendor.Fault {
	return func(w http.ResponseWriter, r *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		WriteError(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
	}
}

// Fault answers status with S3's error code.
func Fault(status int, code string) fakevendor.Fault {
	return func(w http.ResponseWriter, r *http.Request) { WriteError(w, status, code, "injected "+code) }
}

// MalformedXML answers 200 with a cut-off body.
func MalformedXML(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/xml")
	_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><ListVersionsResult><Name>b</Na`)
}

// --- handlers ---

func (f *Fake) maxKeys(q map[string][]string) int {
	n, err := strconv.Atoi(first(q["max-keys"]))
	if size := f.pageSize.Get(); err != nil || n <= 0 || n > size {
		return size
	}
	return n
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func (b *fakeBucket) sortedKeys(prefix string) []string {
	var keys []string
	for k := range b.objects {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func (f *Fake) listVersions(w http.ResponseWriter, name string, b *fakeBucket, q map[string][]string) {
	prefix, keyMarker, idMarker := first(q["prefix"]), first(q["key-marker"]), first(q["version-id-marker"])
	limit := f.maxKeys(q)
	res := listVersionsResult{Name: name, Prefix: prefix, KeyMarker: keyMarker, VersionIdMarker: idMarker, MaxKeys: limit}
	type pos struct{ key, id string }
	var all []pos
	for _, k := range b.sortedKeys(prefix) {
		if k < keyMarker || (k == keyMarker && idMarker == "") {
			continue
		}
		// After a version id marker, only older versions of that key:
		// markers are positions, valid even once that version is deleted.
		after := -1
		if k == keyMarker {
			after = markerSeq(idMarker, b.objects[k])
		}
		for _, v := range b.objects[k] {
			if after >= 0 && v.seq >= after {
				continue
			}
			all = append(all, pos{k, v.id})
			if len(res.Entries) < limit {
				latest := b.objects[k][0] == v
				if v.marker {
					res.Entries = append(res.Entries, xmlDeleteMarker{Key: k, VersionId: v.id, IsLatest: latest, LastModified: lastModified})
				} else {
					res.Entries = append(res.Entries, xmlVersion{Key: k, VersionId: v.id, IsLatest: latest, LastModified: lastModified,
						ETag: `"d41d8cd98f00b204e9800998ecf8427e"`, Size: 13, StorageClass: "STANDARD"})
				}
			}
		}
	}
	if len(all) > limit {
		res.IsTruncated = true
		res.NextKeyMarker, res.NextVersionIdMarker = all[limit-1].key, all[limit-1].id
	}
	writeXML(w, http.StatusOK, res)
}

// markerSeq returns the position of version id marker: the seq it was
// written with, parsed from the id, since the version may be gone.
func markerSeq(id string, versions []*fakeVersion) int {
	if n, ok := strings.CutPrefix(id, "fv-"); ok {
		if s, err := strconv.Atoi(strings.SplitN(n, "-", 2)[0]); err == nil {
			return s
		}
	}
	for _, v := range versions {
		if v.id == id {
			return v.seq
		}
	}
	return 0 // an unknown or deleted "null" version: nothing older is left
}

func (f *Fake) listV2(w http.ResponseWriter, name string, b *fakeBucket, q map[string][]string) {
	prefix := first(q["prefix"])
	limit := f.maxKeys(q)
	after := first(q["start-after"])
	token := first(q["continuation-token"])
	if token != "" {
		k, err := base64.StdEncoding.DecodeString(token)
		if err != nil {
			WriteError(w, http.StatusBadRequest, "InvalidArgument", "The continuation token provided is incorrect")
			return
		}
		after = string(k)
	}
	res := listBucketResult{Name: name, Prefix: prefix, MaxKeys: limit, ContinuationToken: token}
	var visible []string
	for _, k := range b.sortedKeys(prefix) {
		if k > after && !b.objects[k][0].marker {
			visible = append(visible, k)
		}
	}
	for i, k := range visible {
		if i == limit {
			res.IsTruncated = true
			res.NextContinuationToken = base64.StdEncoding.EncodeToString([]byte(visible[i-1]))
			break
		}
		res.Contents = append(res.Contents, xmlObject{Key: k, LastModified: lastModified, ETag: `"d41d8cd98f00b204e9800998ecf8427e"`, Size: 13, StorageClass: "STANDARD"})
	}
	res.KeyCount = len(res.Contents)
	writeXML(w, http.StatusOK, res)
}

func (f *Fake) deleteObjects(w http.ResponseWriter, r *http.Request, b *fakeBucket) {
	body, _ := io.ReadAll(r.Body)
	// S3 wants an integrity header: Content-MD5 (older stores insist on
	// it) or one of the newer x-amz-checksum-* headers.
	md := r.Header.Get("Content-MD5")
	if md == "" && !hasChecksumHeader(r.Header) {
		WriteError(w, http.StatusBadRequest, "InvalidRequest", "Missing required header for this request: Content-MD5")
		return
	}
	if md != "" && md != ContentMD5(body) {
		WriteError(w, http.StatusBadRequest, "BadDigest", "The Content-MD5 you specified did not match what we received.")
		return
	}
	req, err := ParseDelete(body)
	if err != nil || len(req.Objects) == 0 || len(req.Objects) > 1000 {
		WriteError(w, http.StatusBadRequest, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema")
		return
	}
	f.batches = append(f.batches, len(req.Objects))
	bypass := strings.EqualFold(r.Header.Get("x-amz-bypass-governance-retention"), "true")
	var res deleteResult
	for _, o := range req.Objects {
		if f.failDelete != nil {
			if code, msg := f.failDelete(o.Key); code != "" {
				res.Errors = append(res.Errors, xmlDelErr{Key: o.Key, VersionId: o.VersionId, Code: code, Message: msg})
				continue
			}
		}
		versions := b.objects[o.Key]
		if o.VersionId == "" && b.versioning != "" {
			// A plain delete in a versioned bucket only hides the data.
			f.seq++
			m := &fakeVersion{id: f.newID(), seq: f.seq, marker: true}
			if b.versioning == "Suspended" {
				m.id = "null"
				versions = slices.DeleteFunc(versions, func(v *fakeVersion) bool { return v.id == "null" })
			}
			b.objects[o.Key] = append([]*fakeVersion{m}, versions...)
			res.Deleted = append(res.Deleted, xmlDeleted{Key: o.Key, DeleteMarker: true, DeleteMarkerVersionId: m.id})
			continue
		}
		id := o.VersionId
		if id == "" {
			id = "null"
		}
		i := slices.IndexFunc(versions, func(v *fakeVersion) bool { return v.id == id })
		if i < 0 { // missing keys and versions report as deleted
			res.Deleted = append(res.Deleted, xmlDeleted{Key: o.Key, VersionId: o.VersionId})
			continue
		}
		v := versions[i]
		if v.lock == "compliance" || v.lock == "legal-hold" || (v.lock == "governance" && !bypass) {
			res.Errors = append(res.Errors, xmlDelErr{Key: o.Key, VersionId: o.VersionId, Code: "AccessDenied",
				Message: "Access Denied because object protected by object lock."})
			continue
		}
		versions = slices.Delete(versions, i, i+1)
		if len(versions) == 0 {
			delete(b.objects, o.Key)
		} else {
			b.objects[o.Key] = versions
		}
		res.Deleted = append(res.Deleted, xmlDeleted{Key: o.Key, VersionId: o.VersionId, DeleteMarker: v.marker})
	}
	if req.Quiet {
		res.Deleted = nil
	}
	writeXML(w, http.StatusOK, res)
}

func hasChecksumHeader(h http.Header) bool {
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "x-amz-checksum-") {
			return true
		}
	}
	return false
}

// newID makes an opaque-looking version id that still tells its position.
func (f *Fake) newID() string {
	sum := md5.Sum([]byte(strconv.Itoa(f.seq)))
	return fmt.Sprintf("fv-%d-%s", f.seq, base64.RawURLEncoding.EncodeToString(sum[:6]))
}

// --- test-side access to the store, bypassing the API ---

// AllowAccessKey makes the fake accept requests signed with access key id.
func (f *Fake) AllowAccessKey(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[id] = true
}

// Config is an s3 connector config against DefaultBucket of f, with the
// templates exports/{email}.csv, avatars/{user_id}.png and
// uploads/{email}/ (a prefix). It reads {user_id} from UserIDs["app"]
// (fakevendor.UserIDSystem).
func (f *Fake) Config() string {
	return fmt.Sprintf(`bucket: %s
base_url: %s
use_path_style: true
region: eu-west-1
access_key_id: %s
secret_access_key: %s
keys: ["exports/{email}.csv", "avatars/{user_id}.png"]
prefixes: ["uploads/{email}/"]
user_id_system: %s
`, DefaultBucket, f.URL(), f.key.Get(), SecretKey, fakevendor.UserIDSystem)
}

// ConfigWith is Config with top-level keys set (fakevendor.MergeYAML).
func (f *Fake) ConfigWith(lines ...string) string { return fakevendor.MergeYAML(f.Config(), lines...) }

// Seed stores, in DefaultBucket, what Config's templates name for the
// subject: with an Email, an export written twice and two uploads (one
// since hidden by a plain delete, which in a versioned bucket keeps the
// data under a delete marker); with UserIDs["app"], an avatar. It needs
// one of the two.
func (f *Fake) Seed(s connectors.Subject) int64 {
	id := s.UserIDs[fakevendor.UserIDSystem]
	if s.Email == "" && id == "" {
		panic("s3fake: Seed needs a subject with an email or UserIDs[\"" + fakevendor.UserIDSystem + "\"]")
	}
	var n int64
	if s.Email != "" {
		f.Put(DefaultBucket, "exports/"+s.Email+".csv")
		f.Put(DefaultBucket, "exports/"+s.Email+".csv")
		f.Put(DefaultBucket, "uploads/"+s.Email+"/invoice.pdf")
		f.Put(DefaultBucket, "uploads/"+s.Email+"/photos/me.jpg")
		if f.Versioning(DefaultBucket) != "" {
			f.Hide(DefaultBucket, "uploads/"+s.Email+"/photos/me.jpg")
		}
		n += 3
	}
	if id != "" {
		f.Put(DefaultBucket, "avatars/"+id+".png")
		n++
	}
	return n
}

// SeedRecoverable stores, in DefaultBucket, objects Config's templates
// name for the subject that were deleted the way a plain DELETE deletes in
// a versioned bucket: the current version is a delete marker, the data a
// noncurrent version, restorable by deleting the marker or copying the
// version back. With an Email, an export; with UserIDs["app"], an avatar.
// It returns how many objects (keys): none in a bucket that was never
// versioned, where a delete removes the object for good.
func (f *Fake) SeedRecoverable(s connectors.Subject) int64 {
	var keys []string
	if s.Email != "" {
		keys = append(keys, "exports/"+s.Email+".csv")
	}
	if id := s.UserIDs[fakevendor.UserIDSystem]; id != "" {
		keys = append(keys, "avatars/"+id+".png")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.buckets[DefaultBucket]
	if b.versioning == "" {
		return 0
	}
	for _, key := range keys {
		// The version was written while versioning was enabled: it has an
		// id, and survives a delete even in a bucket suspended since.
		f.seq++
		v := &fakeVersion{id: f.newID(), seq: f.seq}
		f.seq++
		m := &fakeVersion{id: f.newID(), seq: f.seq, marker: true}
		if b.versioning == "Suspended" {
			m.id = "null" // a delete in a suspended bucket leaves a null marker
		}
		b.objects[key] = append([]*fakeVersion{m, v}, b.objects[key]...)
	}
	return int64(len(keys))
}

// Count is how many objects of DefaultBucket (with any version or delete
// marker left) Config's templates name for the subject.
func (f *Fake) Count(s connectors.Subject) int64 {
	var keys, prefixes []string
	if s.Email != "" {
		keys = append(keys, "exports/"+s.Email+".csv")
		prefixes = append(prefixes, "uploads/"+s.Email+"/")
	}
	if id := s.UserIDs[fakevendor.UserIDSystem]; id != "" {
		keys = append(keys, "avatars/"+id+".png")
	}
	n, _, _ := f.CountKeys(DefaultBucket, keys, prefixes)
	return int64(n)
}

// AddBucket creates an empty bucket; versioning is "", "Enabled" or
// "Suspended".
func (f *Fake) AddBucket(name, versioning string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buckets[name] = &fakeBucket{versioning: versioning, objects: map[string][]*fakeVersion{}}
}

// Versioning is the bucket's versioning status.
func (f *Fake) Versioning(bucket string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buckets[bucket].versioning
}

// SetVersioning changes the bucket's versioning status.
func (f *Fake) SetVersioning(bucket, versioning string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buckets[bucket].versioning = versioning
}

// Put writes an object: a new version when versioning is enabled, else
// it replaces the "null" version.
func (f *Fake) Put(bucket, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.buckets[bucket]
	f.seq++
	v := &fakeVersion{id: "null", seq: f.seq}
	versions := b.objects[key]
	if b.versioning == "Enabled" {
		v.id = f.newID()
	} else {
		versions = slices.DeleteFunc(versions, func(v *fakeVersion) bool { return v.id == "null" })
	}
	b.objects[key] = append([]*fakeVersion{v}, versions...)
}

// Hide adds a delete marker, as a plain DELETE does in a versioned bucket.
func (f *Fake) Hide(bucket, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	b := f.buckets[bucket]
	b.objects[key] = append([]*fakeVersion{{id: f.newID(), seq: f.seq, marker: true}}, b.objects[key]...)
}

// Lock puts the newest version of key under Object Lock: mode is
// governance, compliance or legal-hold.
func (f *Fake) Lock(bucket, key, mode string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buckets[bucket].objects[key][0].lock = mode
}

// CountKeys returns how many keys (with any version or delete marker)
// match one of keys exactly or start with one of prefixes, and how many
// versions and delete markers they hold.
func (f *Fake) CountKeys(bucket string, keys, prefixes []string) (objects, versions, markers int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, vs := range f.buckets[bucket].objects {
		if !slices.Contains(keys, k) && !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(k, p) }) {
			continue
		}
		objects++
		for _, v := range vs {
			if v.marker {
				markers++
			} else {
				versions++
			}
		}
	}
	return objects, versions, markers
}

// DeleteBatches is the number of objects each DeleteObjects request named.
func (f *Fake) DeleteBatches() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.batches)
}

// SetPageSize caps list pages (S3: 1,000; it may return fewer).
func (f *Fake) SetPageSize(n int) { f.pageSize.Set(n) }

// FailDeletes makes DeleteObjects report a per-key error for each key fn
// returns a code for (nil: none). fn runs with the fake's lock held.
func (f *Fake) FailDeletes(fn func(key string) (code, message string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failDelete = fn
}
