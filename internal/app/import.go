package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lethe-dev/lethe/internal/erasure"
)

// importVerb is `lethe request import FILE.csv`: a request for every row,
// sent in batches of POST /v1/requests/batch. Each row's idempotency key
// is the file's hash and the row's number, and after each batch the
// progress is saved beside the file (FILE.csv.import.json), so an import
// that was interrupted goes on where it stopped when run again, and even
// the batch in flight at the interruption files nobody twice.
var importVerb = requestVerb{args: []string{"FILE.csv"}, run: func(fs *flag.FlagSet) func(context.Context, env, *staffClient, []string) error {
	jurisdiction := fs.String("jurisdiction", "gdpr", "the law for rows without a jurisdiction column")
	size := fs.Int("batch", 500, "rows per call (1 to 1000)")
	name := fs.String("name", "", "the batch's name, to follow it in the console (default import-<the file's SHA-256, 12 hex digits>)")
	return func(ctx context.Context, e env, c *staffClient, pos []string) error {
		if *size < 1 || *size > 1000 {
			return fmt.Errorf("%w: --batch %d: want 1 to 1000", errImportUsage, *size)
		}
		if *name != "" {
			if err := erasure.CheckBatch(*name); err != nil {
				return fmt.Errorf("%w: --name: %s", errImportUsage, erasure.ErrorMessage(err))
			}
		}
		return runImport(ctx, e, c, pos[0], *jurisdiction, *name, *size)
	}
}}

// errImportUsage marks an import refused before anything was sent.
var errImportUsage = errors.New("cannot import")

// importState is the progress file of an import.
type importState struct {
	// File is the SHA-256 of the CSV: a different file is a different import.
	File string `json:"file_sha256"`
	// Batch names the batch every row is filed in.
	Batch string `json:"batch,omitempty"`
	// Done is how many data rows have had a final answer.
	Done     int          `json:"rows_done"`
	Filed    int          `json:"filed"`
	Existing int          `json:"existing"`
	Refused  []refusedRow `json:"refused"`
	Rows     int          `json:"rows"`
	Version  int          `json:"version"`
}

// refusedRow is a row Lethe would not file, and why (never its values).
type refusedRow struct {
	Row     int    `json:"row"` // the line of the CSV, the header being line 1
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// importRow is one data row as a batch item.
type importRow struct {
	line int
	item map[string]any
}

func runImport(ctx context.Context, e env, c *staffClient, path, jurisdiction, name string, size int) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: %w", errImportUsage, err)
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])
	rows, err := parseImport(data, jurisdiction, "import:"+hash[:32]+":")
	if err != nil {
		return fmt.Errorf("%w: %s: %w", errImportUsage, filepath.Base(path), err)
	}
	statePath := path + ".import.json"
	st, err := loadImportState(statePath, hash)
	if err != nil {
		return fmt.Errorf("%w: %w", errImportUsage, err)
	}
	switch {
	case st.Batch == "" && name == "":
		st.Batch = "import-" + hash[:12]
	case st.Batch == "":
		st.Batch = name
	case name != "" && name != st.Batch:
		return fmt.Errorf("%w: this import began as batch %s (%s): run it again without --name, or as --name %s",
			errImportUsage, st.Batch, filepath.Base(statePath), st.Batch)
	}
	st.Rows = len(rows)
	if st.Done > 0 {
		fmt.Fprintf(e.stderr, "resuming: %d of %d rows were done before (%s)\n", st.Done, len(rows), filepath.Base(statePath))
	}
	for st.Done < len(rows) {
		batch := rows[st.Done:min(st.Done+size, len(rows))]
		items := make([]map[string]any, len(batch))
		for i, r := range batch {
			items[i] = r.item
		}
		answer, err := c.do(ctx, call{method: http.MethodPost, path: "/v1/requests/batch", body: map[string]any{"batch": st.Batch, "requests": items}})
		if err != nil {
			return fmt.Errorf("import stopped at row %d of %d (%s holds the progress; run the same command again to go on): %w",
				st.Done, len(rows), filepath.Base(statePath), err)
		}
		var v struct {
			Results []struct {
				Index   int
				Outcome string
				Error   *struct{ Field, Message string }
			}
		}
		if err := json.Unmarshal(answer, &v); err != nil || len(v.Results) != len(batch) {
			return fmt.Errorf("import stopped at row %d: Lethe's answer to a batch of %d is not a result per row", st.Done, len(batch))
		}
		done := 0
		for _, res := range v.Results {
			if res.Index != done {
				return fmt.Errorf("import stopped at row %d: Lethe's answers are out of order", st.Done+done)
			}
			switch res.Outcome {
			case "filed":
				st.Filed++
			case "existing":
				st.Existing++
			case "refused":
				r := refusedRow{Row: batch[done].line}
				if res.Error != nil {
					r.Field, r.Message = strings.TrimPrefix(res.Error.Field, fmt.Sprintf("requests[%d].", res.Index)), res.Error.Message
				}
				st.Refused = append(st.Refused, r)
			default: // not_attempted: Lethe stopped; later rows wait for the next run
				st.Done += done
				if serr := saveImportState(statePath, st); serr != nil {
					return serr
				}
				msg := "Lethe could not file it"
				if res.Error != nil {
					msg = res.Error.Message
				}
				return fmt.Errorf("import stopped at row %d of %d: %s (%s holds the progress; run the same command again to go on)",
					st.Done, len(rows), msg, filepath.Base(statePath))
			}
			done++
		}
		st.Done += done
		if err := saveImportState(statePath, st); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "%s %d/%d rows (%d%%)\n", progressBar(st.Done, len(rows), 30), st.Done, len(rows), st.Done*100/len(rows))
	}
	printImportSummary(e.stdout, st, statePath)
	if len(st.Refused) > 0 {
		return fmt.Errorf("%d of %d rows were refused (listed above, by line)", len(st.Refused), len(rows))
	}
	return nil
}

// parseImport reads the CSV: a header of email, phone, user_id:SYSTEM
// (one column per system) and optionally jurisdiction, then a row per
// person. Mistakes name the line and the column, never a value.
func parseImport(data []byte, jurisdiction, keyPrefix string) ([]importRow, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff")) // spreadsheets write a BOM
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = 0
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("the file is empty: want a header line (email,phone,user_id:SYSTEM,jurisdiction) and a row per person")
	}
	if err != nil {
		return nil, csvError(err)
	}
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		header[i] = h
		system, isID := strings.CutPrefix(h, "user_id:")
		switch {
		case seen[h]:
			return nil, fmt.Errorf("line 1: column %q appears twice", h)
		case h == "email", h == "phone", h == "jurisdiction", isID && system != "":
		default:
			return nil, fmt.Errorf("line 1: unknown column %q: want email, phone, user_id:SYSTEM (such as user_id:shop-db) or jurisdiction", h)
		}
		seen[h] = true
	}
	var rows []importRow
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, csvError(err)
		}
		line, _ := r.FieldPos(0)
		subject, userIDs := map[string]any{}, map[string]string{}
		j := jurisdiction
		for i, v := range rec {
			v = strings.TrimSpace(v)
			if v == "" {
				continue
			}
			switch h := header[i]; h {
			case "email", "phone":
				subject[h] = v
			case "jurisdiction":
				j = v
			default:
				userIDs[strings.TrimPrefix(h, "user_id:")] = v
			}
		}
		if len(userIDs) > 0 {
			subject["user_ids"] = userIDs
		}
		rows = append(rows, importRow{line: line, item: map[string]any{
			"subject": subject, "jurisdiction": j, "idempotency_key": keyPrefix + strconv.Itoa(line),
		}})
	}
	if len(rows) == 0 {
		return nil, errors.New("no rows after the header")
	}
	return rows, nil
}

// csvError says where the CSV is malformed without quoting it.
func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("line %d, column %d: %w", pe.StartLine, pe.Column, pe.Err)
	}
	return err
}

func loadImportState(path, hash string) (importState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return importState{File: hash, Version: 1}, nil
	}
	if err != nil {
		return importState{}, err
	}
	var st importState
	if err := json.Unmarshal(b, &st); err != nil || st.Version != 1 {
		return importState{}, fmt.Errorf("%s is not an import's progress file: remove it to start the import over", filepath.Base(path))
	}
	if st.File != hash {
		return importState{}, fmt.Errorf("the file changed since the import in %s began: its rows would be new requests; "+
			"remove %s to import the changed file (rows already filed are filed again)", filepath.Base(path), filepath.Base(path))
	}
	return st, nil
}

// saveImportState replaces the progress file atomically.
func saveImportState(path string, st importState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("saving the import's progress: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("saving the import's progress: %w", err)
	}
	return nil
}

func progressBar(done, total, width int) string {
	n := done * width / total
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

func printImportSummary(w io.Writer, st importState, statePath string) {
	fmt.Fprintf(w, "%d rows: %d filed, %d filed before (same file and line), %d refused\n",
		st.Rows, st.Filed, st.Existing, len(st.Refused))
	for _, r := range st.Refused {
		field := ""
		if r.Field != "" {
			field = r.Field + ": "
		}
		fmt.Fprintf(w, "  line %d refused: %s%s\n", r.Row, field, r.Message)
	}
	fmt.Fprintf(w, "batch %s: follow it in the console (/console?batch=%s) or at GET /v1/batches/%s\n", st.Batch, st.Batch, st.Batch)
	fmt.Fprintf(w, "progress and this summary: %s (running the command again files nobody twice)\n", filepath.Base(statePath))
}
