package app

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/translog"
)

// runCertVerify checks a certificate offline: exit 0 and a summary when it
// is valid, 1 and the reason when it is not, 2 on a usage mistake.
func runCertVerify(ctx context.Context, e env, args []string) int {
	fs := flag.NewFlagSet("cert verify", flag.ContinueOnError)
	keyFile := fs.String("key", "", "public key file (PEM) or JWKS file")
	jwks := fs.String("jwks", "", "JWKS file or https:// URL (e.g. https://lethe.example.com/v1/keys)")
	origin := fs.String("origin", "", "the transparency log's origin to require (default: the certificate's)")
	logURL := fs.String("log", "", "Lethe's base URL: also check the certificate is still in the log's latest checkpoint")
	email := fs.String("email", "", "with --nonce: check the certificate is about this email")
	nonce := fs.String("nonce", "", "the proof code the data subject was given")
	pos, err := parseFlags(fs, args, e)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if problem := verifyUsageProblem(pos, *keyFile, *jwks, *email, *nonce); problem != "" {
		fmt.Fprintf(e.stderr, "lethe cert verify: %s\n", problem)
		fs.SetOutput(e.stderr)
		fs.Usage()
		return 2
	}
	doc, err := readFileOrStdin(pos[0])
	if err != nil {
		fmt.Fprintln(e.stderr, "lethe:", err)
		return 1
	}
	client := &http.Client{Timeout: 30 * time.Second}
	keys, err := loadKeys(ctx, *keyFile, *jwks, client)
	if err != nil {
		fmt.Fprintln(e.stderr, "lethe:", err)
		return 1
	}
	v, err := certificate.VerifyFor(doc, keys, *origin)
	if err != nil {
		fmt.Fprintln(e.stdout, "INVALID:", err)
		return 1
	}
	// Every check runs before the verdict, which comes first.
	var still string
	if *logURL != "" {
		latest, err := newLogClient(*logURL, client).checkStillIncluded(ctx, v.Log, keys)
		if err != nil {
			fmt.Fprintln(e.stdout, "INVALID: the log no longer holds this certificate:", err)
			return 1
		}
		still = fmt.Sprintf("\nStill in the log: its checkpoint of %d entries is consistent with the latest, of %d.\n", v.Log.Checkpoint.Size, latest.Size)
		rechecks, err := newLogClient(*logURL, client).rechecks(ctx, v.Payload.CertificateID, latest)
		if err != nil {
			fmt.Fprintln(e.stdout, "INVALID: the log's re-checks of this certificate do not verify:", err)
			return 1
		}
		still += describeRechecks(rechecks)
	}
	theirs := true
	if *email != "" {
		n, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(*nonce))
		theirs = err == nil && certificate.VerifyCommitment(v.Payload, *email, n)
	}
	if !theirs {
		fmt.Fprintln(e.stdout, "NOT THEIRS: the certificate is genuine, but this email and proof code do not open its subject commitment: it is not about that person (or the code or email was mistyped).")
	} else {
		fmt.Fprintln(e.stdout, "VALID: signed by a known key and included in the transparency log.")
	}
	fmt.Fprintln(e.stdout)
	fmt.Fprint(e.stdout, v.Summary())
	fmt.Fprint(e.stdout, still)
	if !theirs {
		return 1
	}
	if *email != "" {
		fmt.Fprintln(e.stdout, "\nThis certificate is about that email: the proof code opens its subject commitment.")
	}
	return 0
}

// verifyUsageProblem says what is wrong with a cert verify command line,
// or "".
func verifyUsageProblem(pos []string, keyFile, jwks, email, nonce string) string {
	switch {
	case len(pos) == 0:
		return "name the certificate file (\"-\" reads standard input)"
	case len(pos) > 1:
		return fmt.Sprintf("one certificate file at a time (got %d)", len(pos))
	case keyFile == "" && jwks == "":
		return "say which keys to trust: --key PUBLIC_KEY.pem or --jwks FILE_OR_URL (Lethe publishes them at /v1/keys)"
	case keyFile != "" && jwks != "":
		return "--key and --jwks are alternatives: give one"
	case email != "" && nonce == "":
		return "--email needs --nonce, the proof code the person was given"
	case nonce != "" && email == "":
		return "--nonce needs --email, the address the person gave"
	}
	return ""
}

func loadKeys(ctx context.Context, keyFile, jwks string, client *http.Client) (certificate.JWKS, error) {
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return certificate.JWKS{}, fmt.Errorf("--key: %w", err)
		}
		keys, err := certificate.ParseKeySet(b)
		if err != nil {
			return certificate.JWKS{}, fmt.Errorf("--key: %w", err)
		}
		return keys, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	keys, err := certificate.LoadKeySet(ctx, jwks, client)
	if err != nil {
		return certificate.JWKS{}, fmt.Errorf("--jwks: %w", err)
	}
	return keys, nil
}

// logClient reads a Lethe transparency log over HTTP.
type logClient struct {
	base   string
	client *http.Client
}

func newLogClient(base string, client *http.Client) *logClient {
	return &logClient{base: strings.TrimSuffix(base, "/"), client: client}
}

func (c *logClient) get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	u := c.base + path
	if q != nil {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", u, resp.Status)
	}
	return b, nil
}

// latest fetches and verifies the log's latest checkpoint.
func (c *logClient) latest(ctx context.Context, origin string, keys []ed25519.PublicKey) (translog.Checkpoint, []byte, error) {
	signed, err := c.get(ctx, "/v1/log/checkpoint", nil)
	if err != nil {
		return translog.Checkpoint{}, nil, err
	}
	if origin == "" {
		origin, _, _ = strings.Cut(string(signed), "\n")
	}
	cp, _, err := translog.OpenCheckpoint(signed, origin, keys)
	return cp, signed, err
}

// consistent checks that the log grew from old to cp without rewriting.
func (c *logClient) consistent(ctx context.Context, old, cp translog.Checkpoint) error {
	if cp.Size < old.Size {
		return fmt.Errorf("the log shrank from %d to %d entries", old.Size, cp.Size)
	}
	b, err := c.get(ctx, "/v1/log/proof/consistency", url.Values{"from": {fmt.Sprint(old.Size)}, "to": {fmt.Sprint(cp.Size)}})
	if err != nil {
		return err
	}
	var p translog.ConsistencyProof
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("consistency proof: %w", err)
	}
	if p.From != old.Size || p.To != cp.Size {
		return errors.New("the log answered a proof for other sizes")
	}
	return translog.VerifyConsistency(p, old.Root, cp.Root)
}

// checkStillIncluded checks that the certificate's checkpoint is a prefix of
// the log's latest: the certificate was not withdrawn or back-dated.
func (c *logClient) checkStillIncluded(ctx context.Context, pos certificate.LogPosition, keys certificate.JWKS) (translog.Checkpoint, error) {
	cp, _, err := c.latest(ctx, pos.Origin, keys.PublicKeys())
	if err != nil {
		return cp, err
	}
	return cp, c.consistent(ctx, pos.Checkpoint, cp)
}

// rechecks fetches the re-check leaves of certificate id and checks each
// is in the tree of the verified checkpoint cp and names id.
func (c *logClient) rechecks(ctx context.Context, id string, cp translog.Checkpoint) ([]translog.RecheckEvent, error) {
	b, err := c.get(ctx, "/v1/certificates/"+url.PathEscape(id)+"/rechecks", url.Values{"size": {fmt.Sprint(cp.Size)}})
	if err != nil {
		return nil, err
	}
	var out struct {
		Size     int64 `json:"size"`
		Rechecks []struct {
			Index    int64                   `json:"index"`
			LeafData string                  `json:"leaf_data"`
			Proof    translog.InclusionProof `json:"proof"`
		} `json:"rechecks"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("re-checks: %w", err)
	}
	var events []translog.RecheckEvent
	for _, r := range out.Rechecks {
		leaf, err := base64.StdEncoding.DecodeString(r.LeafData)
		if err != nil {
			return nil, fmt.Errorf("re-check at index %d: leaf_data: %w", r.Index, err)
		}
		if r.Proof.Index != r.Index || r.Proof.TreeSize != cp.Size {
			return nil, fmt.Errorf("re-check at index %d: the proof is for another leaf or tree", r.Index)
		}
		if err := translog.VerifyInclusion(r.Proof, leaf, cp.Root); err != nil {
			return nil, fmt.Errorf("re-check at index %d is not in the log: %w", r.Index, err)
		}
		ev, err := translog.ParseRecheckLeaf(leaf)
		if err != nil {
			return nil, fmt.Errorf("re-check at index %d: %w", r.Index, err)
		}
		if ev.CertificateID != id {
			return nil, fmt.Errorf("re-check at index %d is of certificate %s, not this one", r.Index, ev.CertificateID)
		}
		events = append(events, ev)
	}
	return events, nil
}

// describeRechecks says what the log's re-checks found, one line each.
func describeRechecks(es []translog.RecheckEvent) string {
	if len(es) == 0 {
		return "Re-checked: not yet (the log holds no re-check of this certificate).\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Re-checked later (%d, each in the log):\n", len(es))
	for _, e := range es {
		age := "a scheduled sweep"
		if d, err := time.ParseDuration(e.After); err == nil {
			age = erasure.AgeDay(d)
		}
		var what string
		switch e.Outcome {
		case translog.RecheckClean:
			what = "clean: looked up again, held nothing"
		case translog.RecheckFound:
			what = fmt.Sprintf("FOUND AGAIN: held %s; Lethe started erasing them again", plural(int(e.Records), "record"))
		case translog.RecheckReerased:
			what = "erased again"
			if e.Records >= 0 {
				what = "erased again: " + plural(int(e.Records), "record")
			}
			if e.Note != "" {
				what += " (" + e.Note + ")"
			}
		case translog.RecheckNotChecked:
			what = "not checked: " + e.Note
		default:
			what = e.Outcome
		}
		fmt.Fprintf(&b, "  %s at %s (%s): %s\n", e.Connector, age, e.At, what)
	}
	return b.String()
}
