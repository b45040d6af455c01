package salesforce

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode"

	"github.com/lethe-dev/lethe/connectors"
)

// batchLimit is how many subjects one EraseBatch takes: what one SOQL
// `Email IN (…)` lookup per object carries within Salesforce's REST limit
// of 16,384 bytes of URI and headers, for addresses of ordinary length
// (about 40 bytes each once quoted and URL-encoded: 200 make some 8 KB).
// Longer addresses split the lookup into more queries (maxQueryURI), never
// into an error. 200 is also what one emptyRecycleBin call takes.
const batchLimit = 200

// maxQueryURI is the most bytes of URL one lookup is given: Salesforce
// takes 16,384 bytes of URI and headers together; the rest is left to the
// headers (the Bearer token among them).
const maxQueryURI = 12000

var (
	_ connectors.BatchEraser   = (*conn)(nil)
	_ connectors.BatchPoller   = (*conn)(nil)
	_ connectors.BatchVerifier = (*conn)(nil)
)

// BatchLimit is how many subjects one EraseBatch takes (batchLimit).
func (c *conn) BatchLimit() int { return batchLimit }

// EraseBatch erases many subjects with one lookup per object (Email IN
// …), one emptyRecycleBin call per 200 records in the Recycle Bin and one
// hardDelete job per object for every live record of the batch. Each
// subject gets a job reference naming the shared jobs and which of their
// records are the subject's (by rank, never by id). More subjects than
// BatchLimit are erased BatchLimit at a time.
func (c *conn) EraseBatch(ctx context.Context, subjects []connectors.Subject) ([]connectors.Item, error) {
	items := make([]connectors.Item, 0, len(subjects))
	for _, ch := range connectors.Chunks(len(subjects), batchLimit) {
		got, err := c.eraseBatch(ctx, subjects[ch[0]:ch[1]])
		if err != nil {
			return nil, err
		}
		items = append(items, got...)
	}
	return items, nil
}

// batchEmails are the subjects' distinct emails, as given and as SOQL
// literals, and for each subject the error that keeps it out of the
// lookup (no email, or one too long to look up).
func batchEmails(subjects []connectors.Subject) (emails, lits []string, errs []error) {
	errs = make([]error, len(subjects))
	for i, s := range subjects {
		if s.Email == "" {
			errs[i] = errNoEmail()
			continue
		}
		lit, err := soqlString(s.Email)
		if err == nil && len(url.QueryEscape(lit)) > maxQueryURI/2 {
			err = connectors.Permanentf("the email is too long to be looked up in Salesforce (a Salesforce Email field holds 80 characters)")
		}
		if err != nil {
			errs[i] = err
			continue
		}
		if !slices.Contains(emails, s.Email) {
			emails, lits = append(emails, s.Email), append(lits, lit)
		}
	}
	return emails, lits, errs
}

// eraseBatch erases at most batchLimit subjects.
func (c *conn) eraseBatch(ctx context.Context, subjects []connectors.Subject) ([]connectors.Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	items := make([]connectors.Item, len(subjects))
	emails, lits, errs := batchEmails(subjects)
	for i, err := range errs {
		items[i].Err = err
	}
	if len(emails) == 0 {
		return items, nil
	}
	found, err := c.findMany(ctx, emails, lits)
	if err != nil {
		return nil, err
	}

	// The Recycle Bin first, for every subject at once, then one job per
	// object for every live record.
	purgeCodes := map[string]map[string]string{} // object → id → status code ("": emptied)
	for _, o := range c.objects {
		var ids []string
		for _, r := range found[o] {
			ids = append(ids, r.recycled...)
		}
		if len(ids) == 0 {
			continue
		}
		if purgeCodes[o], err = c.purgeEach(ctx, dedupe(ids)); err != nil {
			return nil, err
		}
	}
	type started struct {
		id   string
		rank map[string]int // record id → its place in the job's sorted ids
		all  int
	}
	jobs := map[string]started{}
	for _, o := range c.objects {
		var ids []string
		for _, r := range found[o] {
			ids = append(ids, r.live...)
		}
		if len(ids) == 0 {
			continue
		}
		ids = dedupe(ids) // sorted: ranks are places in this order
		id, err := c.startJob(ctx, o, ids)
		if err != nil {
			// Jobs already started run on; a retry finds what they have
			// not deleted yet.
			return nil, err
		}
		j := started{id: id, rank: map[string]int{}, all: len(ids)}
		for k, rec := range ids {
			j.rank[rec] = k
		}
		jobs[o] = j
	}

	for i, s := range subjects {
		if items[i].Err != nil {
			continue
		}
		key := foldKey(s.Email)
		var evidence []connectors.Evidence
		var total int
		for _, o := range c.objects {
			r := found[o][key]
			evidence = append(evidence, connectors.Evidence{Kind: "soql", Value: fmt.Sprintf("%s: %s found (%d in the Recycle Bin)", o, connectors.Plural(r.total(), "record"), len(r.recycled))})
			total += r.total()
		}
		if total == 0 {
			items[i].Outcome = connectors.NotFound(evidence...)
			continue
		}
		ref := jobRef{V: 1}
		var purged int64
		var unpurged []error
		for _, o := range c.objects {
			own := found[o][key].recycled
			if len(own) == 0 {
				continue
			}
			n, err := purgeOutcome(o, own, purgeCodes[o])
			if err != nil {
				unpurged = append(unpurged, err)
			}
			if n > 0 {
				if ref.Purged == nil {
					ref.Purged = map[string]int64{}
				}
				ref.Purged[o] = n
				purged += n
				evidence = append(evidence, purgedEvidence(o, n))
			}
		}
		for _, o := range c.objects {
			own := found[o][key].live
			if len(own) == 0 {
				continue
			}
			j := jobs[o]
			rj := refJob{Object: o, ID: j.id}
			line := fmt.Sprintf("%s hardDelete job %s: UploadComplete, %s", o, j.id, connectors.Plural(len(own), "record"))
			if len(own) < j.all {
				ref.V = 2
				rj.N, rj.Of = len(own), j.all
				for _, rec := range own {
					rj.At = append(rj.At, j.rank[rec])
				}
				slices.Sort(rj.At)
				line += fmt.Sprintf(" of %d in the job", j.all)
			}
			ref.Jobs = append(ref.Jobs, rj)
			evidence = append(evidence, connectors.Evidence{Kind: "bulk_job", Value: line})
		}
		switch {
		case len(unpurged) > 0:
			started := ""
			if len(ref.Jobs) > 0 {
				started = fmt.Sprintf("; hardDelete jobs were started for the live records (%d jobs)", len(ref.Jobs))
			}
			items[i].Err = connectors.Permanent(fmt.Errorf("%w (%d emptied from it%s)", errors.Join(unpurged...), purged, started))
		case len(ref.Jobs) == 0:
			items[i].Outcome = connectors.Erased(purged, evidence...)
		default:
			items[i].Outcome = connectors.Running(ref.String(), c.poll, evidence...)
		}
	}
	return items, nil
}

// dedupe sorts ids and drops repeats.
func dedupe(ids []string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return slices.Compact(ids)
}

// foldKey is the same for two emails that strings.EqualFold finds equal:
// each rune becomes the least of its Unicode case-folding orbit. SOQL
// compares Email case-insensitively, so a record is attributed to every
// subject of the batch whose email folds to its Email.
func foldKey(s string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, s)
}

// findMany looks emails up with queryAll, one query per object for as
// many as fit in maxQueryURI, and returns each object's records by the
// fold key of their email. A query with one email is `Email = '…'`, as
// for a single erase; with more it is `Email IN (…)` and reads Email to
// tell whose each record is.
func (c *conn) findMany(ctx context.Context, emails, lits []string) (map[string]map[string]records, error) {
	found := map[string]map[string]records{}
	for _, o := range c.objects {
		byKey := map[string]records{}
		seen := map[string]map[string]bool{} // key → ids already attributed
		add := func(key string, r row) {
			if seen[key] == nil {
				seen[key] = map[string]bool{}
			}
			if seen[key][r.id] {
				return
			}
			seen[key][r.id] = true
			rec := byKey[key]
			if r.deleted {
				rec.recycled = append(rec.recycled, r.id)
			} else {
				rec.live = append(rec.live, r.id)
			}
			byKey[key] = rec
		}
		for _, ch := range c.lookups(o, lits) {
			chunk := emails[ch[0]:ch[1]]
			keys := map[string]bool{}
			for _, e := range chunk {
				keys[foldKey(e)] = true
			}
			if len(chunk) == 1 {
				rows, err := c.query(ctx, "queryAll", "SELECT Id, IsDeleted FROM "+o+" WHERE Email = "+lits[ch[0]])
				if err != nil {
					return nil, err
				}
				for _, r := range rows {
					add(foldKey(chunk[0]), r)
				}
				continue
			}
			rows, err := c.query(ctx, "queryAll", "SELECT Id, IsDeleted, Email FROM "+o+" WHERE Email IN ("+strings.Join(lits[ch[0]:ch[1]], ", ")+")")
			if err != nil {
				return nil, err
			}
			for _, r := range rows {
				var email string
				_ = json.Unmarshal(r.fields["Email"], &email)
				key := foldKey(email)
				if !keys[key] {
					if len(keys) != 1 {
						// Salesforce matched it to one of the emails in
						// a way the fold here does not: whose it is
						// cannot be told, so nothing is claimed. Halves
						// of the batch come back to one email, which
						// owns all the lookup finds.
						// Permanent, so that the runtime splits it.
						return nil, connectors.Permanent(sfError("SOQL queryAll: a %s record matches none of the batch's emails as compared here; the batch will be split", o))
					}
					for k := range keys {
						key = k
					}
				}
				add(key, r)
			}
		}
		found[o] = byKey
	}
	return found, nil
}

// lookups splits lits into runs whose Email IN query on object fits in
// maxQueryURI bytes of URL. URL-encoding works byte by byte, so the
// encoded length of the query is the sum of its parts'.
func (c *conn) lookups(object string, lits []string) [][2]int {
	base := len(c.api+"/queryAll?q=") + len(url.QueryEscape("SELECT Id, IsDeleted, Email FROM "+object+" WHERE Email IN ()"))
	sep := len(url.QueryEscape(", "))
	var out [][2]int
	start, size := 0, base
	for i, lit := range lits {
		n := len(url.QueryEscape(lit))
		if i > start && size+sep+n > maxQueryURI {
			out = append(out, [2]int{start, i})
			start, size = i, base
		}
		if i > start {
			size += sep
		}
		size += n
	}
	return append(out, [2]int{start, len(lits)})
}

// purgeEach empties ids from the Recycle Bin with emptyRecycleBin, 200 a
// call, and returns each id's status code ("" when it was emptied). A
// call that fails fails it all.
func (c *conn) purgeEach(ctx context.Context, ids []string) (map[string]string, error) {
	codes := map[string]string{}
	for batch := range slices.Chunk(ids, maxPurge) {
		results, err := c.emptyRecycleBin(ctx, batch)
		if err != nil {
			return nil, err
		}
		for k, r := range results {
			code := ""
			if !r.Success {
				code = "unknown"
				if len(r.Errors) > 0 && statusCodeRe.MatchString(r.Errors[0].StatusCode) {
					code = r.Errors[0].StatusCode
				}
			}
			codes[batch[k]] = code
		}
	}
	return codes, nil
}

// purgeOutcome is what emptyRecycleBin did to ids of object: how many
// went, and a *purgeError for those that did not.
func purgeOutcome(object string, ids []string, codes map[string]string) (int64, error) {
	var purged int64
	failed := &purgeError{object: object, total: len(ids), codes: map[string]int{}}
	for _, id := range ids {
		code, ok := codes[id]
		switch {
		case !ok:
			failed.codes["unknown"]++
			failed.failed++
		case code == "":
			purged++
		default:
			failed.codes[code]++
			failed.failed++
		}
	}
	if failed.failed > 0 {
		return purged, failed
	}
	return purged, nil
}

// jobRef is what Poll needs to find the jobs an Erase started; it holds
// Salesforce job ids, counts and ranks only, nothing about the person.
// Version 1 refs name jobs whose records are all the subject's (a single
// erase, or a batch where the subject alone had records of the object);
// version 2 refs may name jobs shared by a batch.
type jobRef struct {
	V    int      `json:"v"`
	Jobs []refJob `json:"jobs"`
	// Purged counts, per object, the records Erase emptied from the
	// Recycle Bin: they are part of the erasure Poll reports.
	Purged map[string]int64 `json:"purged,omitempty"`
}

// refJob is a job of a ref. A job shared by a batch says which of its
// records are the subject's: N of its Of records, at these ranks At of
// the job's record ids in sorted order (the order they were uploaded).
// Ranks say nothing about the person; the job's results list its ids, so
// Poll can tell the subject's failures from the others'.
type refJob struct {
	Object string `json:"object"`
	ID     string `json:"id"`
	N      int    `json:"n,omitempty"`
	Of     int    `json:"of,omitempty"`
	At     []int  `json:"at,omitempty"`
}

// shared reports whether the job holds records of other subjects too.
func (j refJob) shared() bool { return j.Of > 0 }

func (r jobRef) String() string {
	b, _ := json.Marshal(r)
	return string(b)
}

func parseJobRef(s string) (jobRef, error) {
	var r jobRef
	bad := connectors.Permanentf("not a Salesforce job reference")
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil || (r.V != 1 && r.V != 2) || len(r.Jobs) == 0 {
		return jobRef{}, bad
	}
	for _, j := range r.Jobs {
		if !slices.Contains(Objects, j.Object) || !sfIDRe.MatchString(j.ID) {
			return jobRef{}, bad
		}
		if !j.shared() {
			if j.N != 0 || j.At != nil {
				return jobRef{}, bad
			}
			continue
		}
		if r.V < 2 || j.N < 1 || j.N >= j.Of || len(j.At) != j.N || !slices.IsSorted(j.At) || j.At[0] < 0 || j.At[j.N-1] >= j.Of || len(slices.Compact(slices.Clone(j.At))) != j.N {
			return jobRef{}, bad
		}
	}
	for o, n := range r.Purged {
		if !slices.Contains(Objects, o) || n < 0 {
			return jobRef{}, bad
		}
	}
	return r, nil
}

// Poll reads the state of each job of ref: a batch of one (PollBatch).
func (c *conn) Poll(ctx context.Context, ref string) (connectors.Outcome, error) {
	return connectors.One(ctx, c.PollBatch, ref)
}

// jobView is what PollBatch learnt of one job, for every ref naming it.
type jobView struct {
	refJob
	info jobInfo
	// err fails the refs naming the job (it is gone, Failed, Aborted).
	err error
	// failed maps the ids of the records that failed to their status
	// code; unnamed counts failures whose row had no valid id.
	failed  map[string]string
	unnamed map[string]int
	// all are the job's record ids, sorted (for shared refs, when
	// records failed); nil when they could not all be read.
	all []string
	// fates says what became of records that failed as already deleted
	// (ENTITY_IS_DELETED): fateGone, fateRestored, or the
	// emptyRecycleBin status code ("" emptied).
	fates map[string]string
}

const (
	fateGone     = "gone"
	fateRestored = "restored"
)

// PollBatch reports on many refs, reading each job once however many refs
// name it: its status and, if records failed, its failed results (and, for
// a job shared by a batch, its successful results, to tell whose records
// failed). Salesforce's job states are Open, UploadComplete, InProgress,
// JobComplete, Failed and Aborted.
func (c *conn) PollBatch(ctx context.Context, refs []string) ([]connectors.Item, error) {
	items := make([]connectors.Item, len(refs))
	parsed := make([]jobRef, len(refs))
	views := map[string]*jobView{}
	var order []string
	for i, ref := range refs {
		r, err := parseJobRef(ref)
		if err != nil {
			items[i].Err = err
			continue
		}
		parsed[i] = r
		for _, j := range r.Jobs {
			v := views[j.ID]
			if v == nil {
				v = &jobView{refJob: refJob{Object: j.Object, ID: j.ID}}
				views[j.ID], order = v, append(order, j.ID)
			}
			if j.shared() {
				v.Of = j.Of // marks the job as needing its ids if records failed
			}
		}
	}
	for _, id := range order {
		if err := c.view(ctx, views[id]); err != nil {
			return nil, err
		}
	}
	for i, ref := range refs {
		if items[i].Err == nil {
			items[i].Outcome, items[i].Err = c.outcome(ref, parsed[i], views)
		}
	}
	return items, nil
}

// view reads job v's status and, when it completed with failures, what
// failed; an error fails the whole PollBatch.
func (c *conn) view(ctx context.Context, v *jobView) error {
	resp, err := c.send(ctx, http.MethodGet, c.api+"/jobs/ingest/"+v.ID, nil, "job status", http.StatusNotFound)
	if err != nil {
		return err
	}
	if resp.Status == http.StatusNotFound {
		// Salesforce removes jobs after seven days. Erasing again looks
		// the person up afresh.
		v.err = connectors.Retryable(sfError("%s hardDelete job %s no longer exists; the erase will be redone", v.Object, v.ID), 0)
		return nil
	}
	if err := resp.JSON(&v.info); err != nil {
		return err
	}
	info := v.info
	if info.State == "" || info.NumberRecordsFailed < 0 || info.NumberRecordsProcessed < 0 {
		return connectors.Retryable(sfError("job %s: the status answer has no state", v.ID), 0)
	}
	switch info.State {
	case "UploadComplete", "InProgress":
		return nil
	case "JobComplete":
	case "Failed":
		// Nothing in the job's data is at fault (ids from SOQL); an
		// erase again starts a new job for what is left.
		v.err = connectors.Retryable(sfError("%s hardDelete job %s failed; see Setup > Bulk Data Load Jobs", v.Object, v.ID), 0)
		return nil
	case "Aborted":
		v.err = connectors.Permanentf("Salesforce %s hardDelete job %s was aborted in Salesforce; retry the task once that was intended", v.Object, v.ID)
		return nil
	case "Open":
		v.err = connectors.Retryable(sfError("%s hardDelete job %s is still open: its upload never completed", v.Object, v.ID), 0)
		return nil
	default:
		v.err = connectors.Retryable(sfError("%s hardDelete job %s: unknown state", v.Object, v.ID), 0)
		return nil
	}
	if info.NumberRecordsFailed == 0 {
		return nil
	}
	if v.failed, v.unnamed, err = c.failedResults(ctx, v.refJob); err != nil {
		return err
	}
	if v.shared() {
		if v.all, err = c.jobIDs(ctx, v.refJob, v.failed); err != nil {
			return err
		}
	}
	var deleted []string
	for id, code := range v.failed {
		if code == "ENTITY_IS_DELETED" {
			deleted = append(deleted, id)
		}
	}
	if len(deleted) == 0 {
		return nil
	}
	// A record deleted since the lookup was deleted either by another
	// job (gone) or the ordinary way: then it is in the Recycle Bin,
	// restorable, and is emptied from it now.
	slices.Sort(deleted)
	v.fates = map[string]string{}
	live, binned, err := c.lookupIDs(ctx, v.Object, deleted)
	if err != nil {
		return err
	}
	codes := map[string]string{}
	if len(binned) > 0 {
		if codes, err = c.purgeEach(ctx, binned); err != nil {
			return err
		}
	}
	for _, id := range deleted {
		switch code, purged := codes[id]; {
		case live[id]:
			v.fates[id] = fateRestored
		case purged:
			v.fates[id] = code
		default:
			v.fates[id] = fateGone
		}
	}
	return nil
}

// outcome is ref's outcome from the jobs' views.
func (c *conn) outcome(ref string, r jobRef, views map[string]*jobView) (connectors.Outcome, error) {
	var evidence []connectors.Evidence
	var erased int64
	running := false
	for _, j := range r.Jobs {
		v := views[j.ID]
		if v.err != nil {
			return connectors.Outcome{}, v.err
		}
		info := v.info
		if info.State != "JobComplete" {
			running = true
			evidence = append(evidence, connectors.Evidence{Kind: "bulk_job", Value: fmt.Sprintf("%s hardDelete job %s: %s", j.Object, j.ID, info.State)})
			continue
		}
		line := fmt.Sprintf("%s hardDelete job %s: JobComplete, %d processed, %d failed", j.Object, j.ID, info.NumberRecordsProcessed, info.NumberRecordsFailed)
		// mine: how many of the job's records are the subject's; failed:
		// those of them that failed, with their codes.
		var mine int64
		failed := map[string]string{}
		unnamed := map[string]int{}
		switch {
		case !j.shared():
			mine = info.NumberRecordsProcessed
			failed, unnamed = v.failed, v.unnamed
		case info.NumberRecordsFailed == 0 && info.NumberRecordsProcessed == int64(j.Of):
			mine = int64(j.N)
		case len(v.unnamed) > 0 || len(v.all) != j.Of:
			return connectors.Outcome{}, connectors.Retryable(sfError("%s hardDelete job %s: %d of its %d records failed, and its results do not say which of them were this subject's; the erase will be redone",
				j.Object, j.ID, info.NumberRecordsFailed, j.Of), 0)
		default:
			mine = int64(j.N)
			for _, k := range j.At {
				if code, ok := v.failed[v.all[k]]; ok {
					failed[v.all[k]] = code
				}
			}
		}
		if j.shared() {
			line += fmt.Sprintf("; this subject's: %d, %d of them failed", j.N, len(failed))
		}
		codes := map[string]int{}
		var deleted []string
		for id, code := range failed {
			if code == "ENTITY_IS_DELETED" {
				deleted = append(deleted, id)
			} else {
				codes[code]++
			}
		}
		for code, n := range unnamed {
			codes[code] += n
		}
		if len(codes) > 0 {
			var n int
			for _, k := range codes {
				n += k
			}
			err := sfError("%s hardDelete job %s: %d of %d records were not deleted (%s); see Setup > Bulk Data Load Jobs",
				j.Object, j.ID, n, mine, codeList(codes))
			if _, locked := codes["UNABLE_TO_LOCK_ROW"]; locked && len(codes) == 1 {
				return connectors.Outcome{}, connectors.Retryable(err, 0)
			}
			return connectors.Outcome{}, connectors.Permanent(err)
		}
		if j.shared() {
			erased += mine - int64(len(failed))
		} else {
			erased += max(info.NumberRecordsProcessed-info.NumberRecordsFailed, 0)
		}
		if len(deleted) > 0 {
			slices.Sort(deleted)
			var restored int
			var binned []string
			purgeCodes := map[string]string{}
			for _, id := range deleted {
				switch fate := v.fates[id]; fate {
				case fateRestored:
					restored++
				case fateGone:
				default:
					binned = append(binned, id)
					purgeCodes[id] = fate
				}
			}
			if restored > 0 {
				return connectors.Outcome{}, connectors.Retryable(sfError("%s: %s restored while its hardDelete job ran; the erase will be redone", j.Object, connectors.Plural(restored, "record")), 0)
			}
			emptied, err := purgeOutcome(j.Object, binned, purgeCodes)
			if err != nil {
				return connectors.Outcome{}, connectors.Permanent(err)
			}
			erased += emptied
			line += fmt.Sprintf(" (%d already deleted", len(deleted))
			if emptied > 0 {
				line += fmt.Sprintf(", %d of them emptied from the Recycle Bin", emptied)
			}
			line += ")"
		}
		evidence = append(evidence, connectors.Evidence{Kind: "bulk_job", Value: line})
	}
	if running {
		return connectors.Running(ref, c.poll, evidence...), nil
	}
	for _, o := range Objects {
		if n := r.Purged[o]; n > 0 {
			erased += n
			evidence = append(evidence, purgedEvidence(o, n))
		}
	}
	return connectors.Erased(erased, evidence...), nil
}

// lookupIDs looks ids (of object) up with queryAll and says which it
// finds live (restored meanwhile) and which still deleted: in the Recycle
// Bin, or emptied from it and not yet deleted physically. Those it does
// not find are gone.
func (c *conn) lookupIDs(ctx context.Context, object string, ids []string) (live map[string]bool, deleted []string, err error) {
	live = map[string]bool{}
	for batch := range slices.Chunk(ids, maxPurge) {
		quoted := make([]string, len(batch))
		for i, id := range batch {
			quoted[i] = "'" + id + "'" // ids are checked alphanumeric
		}
		rows, err := c.query(ctx, "queryAll", "SELECT Id, IsDeleted FROM "+object+" WHERE Id IN ("+strings.Join(quoted, ", ")+")")
		if err != nil {
			return nil, nil, err
		}
		for _, r := range rows {
			if !slices.Contains(batch, r.id) {
				continue
			}
			if r.deleted {
				deleted = append(deleted, r.id)
			} else {
				live[r.id] = true
			}
		}
	}
	return live, deleted, nil
}

// resultsCSV reads one of a job's result lists (failedResults,
// successfulResults): a CSV with a header row.
func (c *conn) resultsCSV(ctx context.Context, j refJob, list string) ([][]string, error) {
	req, err := newRequest(http.MethodGet, c.api+"/jobs/ingest/"+j.ID+"/"+list+"/", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/csv")
	resp, err := c.do(ctx, req, list)
	if err != nil {
		return nil, err
	}
	rd := csv.NewReader(bytes.NewReader(resp.Body))
	rd.FieldsPerRecord = -1
	var rows [][]string
	for {
		row, err := rd.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, connectors.Retryable(sfError("job %s: unreadable %s", j.ID, list), 0)
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return nil, connectors.Retryable(sfError("job %s: unreadable %s", j.ID, list), 0)
	}
	return rows, nil
}

// rowID is a result row's record id: the uploaded Id column, else sf__Id.
func rowID(row []string, idCol, sfIDCol int) (string, bool) {
	for _, col := range []int{idCol, sfIDCol} {
		if col >= 0 && col < len(row) && sfIDRe.MatchString(row[col]) {
			return row[col], true
		}
	}
	return "", false
}

// failedResults reads why records of a completed job failed: each failed
// record's id and status code, and the codes of rows without a valid id
// (counted). Only Salesforce's status codes are kept: its messages can
// quote the record's name.
func (c *conn) failedResults(ctx context.Context, j refJob) (map[string]string, map[string]int, error) {
	rows, err := c.resultsCSV(ctx, j, "failedResults")
	if err != nil {
		return nil, nil, err
	}
	header := rows[0]
	col, idCol, sfIDCol := slices.Index(header, "sf__Error"), slices.Index(header, "Id"), slices.Index(header, "sf__Id")
	if col < 0 || (idCol < 0 && sfIDCol < 0) {
		return nil, nil, connectors.Retryable(sfError("job %s: unreadable failed results", j.ID), 0)
	}
	failed, unnamed := map[string]string{}, map[string]int{}
	for _, row := range rows[1:] {
		if col >= len(row) {
			return nil, nil, connectors.Retryable(sfError("job %s: unreadable failed results", j.ID), 0)
		}
		code, _, _ := strings.Cut(row[col], ":")
		if !statusCodeRe.MatchString(code) {
			code = "unknown"
		}
		id, ok := rowID(row, idCol, sfIDCol)
		switch {
		case !ok && code == "ENTITY_IS_DELETED":
			return nil, nil, connectors.Retryable(sfError("job %s: a failed result without a valid Id", j.ID), 0)
		case !ok:
			unnamed[code]++
		default:
			failed[id] = code
		}
	}
	return failed, unnamed, nil
}

// jobIDs lists a completed job's record ids, sorted: those of its
// successful results and the failed ones. Nil when a row has no valid id:
// the subjects' parts cannot be told apart then.
func (c *conn) jobIDs(ctx context.Context, j refJob, failed map[string]string) ([]string, error) {
	rows, err := c.resultsCSV(ctx, j, "successfulResults")
	if err != nil {
		return nil, err
	}
	idCol, sfIDCol := slices.Index(rows[0], "Id"), slices.Index(rows[0], "sf__Id")
	ids := make([]string, 0, len(rows)-1+len(failed))
	for _, row := range rows[1:] {
		id, ok := rowID(row, idCol, sfIDCol)
		if !ok {
			return nil, nil
		}
		ids = append(ids, id)
	}
	for id := range failed {
		ids = append(ids, id)
	}
	all := dedupe(ids)
	if len(all) != len(ids) {
		return nil, nil // a record both succeeded and failed: not to be guessed at
	}
	return all, nil
}

// VerifyBatch runs Verify's lookups for many subjects with one queryAll
// per object for as many emails as fit (findMany); each subject is judged
// as Verify judges one.
func (c *conn) VerifyBatch(ctx context.Context, subjects []connectors.Subject) ([]connectors.Checked, error) {
	out := make([]connectors.Checked, len(subjects))
	for _, ch := range connectors.Chunks(len(subjects), batchLimit) {
		emails, lits, errs := batchEmails(subjects[ch[0]:ch[1]])
		for j, err := range errs {
			out[ch[0]+j].Err = err
		}
		if len(emails) == 0 {
			continue
		}
		found, err := c.findMany(ctx, emails, lits)
		if err != nil {
			return nil, err
		}
		for i := ch[0]; i < ch[1]; i++ {
			if out[i].Err != nil {
				continue
			}
			key := foldKey(subjects[i].Email)
			out[i].Verification = c.verification(func(o string) records { return found[o][key] })
		}
	}
	return out, nil
}
