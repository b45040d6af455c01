package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/translog"
)

// witnessState is what a witness remembers between runs: the last
// checkpoint it verified and cosigned.
type witnessState struct {
	Origin     string `json:"origin"`
	Size       int64  `json:"size"`
	Root       string `json:"root"` // base64
	Checkpoint string `json:"checkpoint"`
}

// runWitness is `lethe witness`: fetch the log's latest checkpoint, check
// it is consistent with the last one seen (the log only grew), and
// countersign it (C2SP tlog-cosignature/v1). Run by someone outside the
// organisation, it makes a rewritten history or a split view detectable.
func runWitness(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("witness", flag.ContinueOnError)
	logURL := fs.String("log", "", "the Lethe server, e.g. https://lethe.example.com")
	name := fs.String("name", "", "this witness's name, e.g. witness.example.org/lethe")
	keyFile := fs.String("key", "", "this witness's Ed25519 private key (PKCS#8 PEM; lethe keygen makes one)")
	statePath := fs.String("state", "", "file keeping the last checkpoint seen")
	jwks := fs.String("jwks", "", "the log's keys, a JWKS file or URL (default: the log's /v1/keys, trusted on first use)")
	origin := fs.String("origin", "", "the log's origin to require (default: the one in the state, else the checkpoint's)")
	out := fs.String("out", "", "also write the cosigned checkpoint here")
	interval := fs.Duration("interval", 0, "check again at this interval until stopped (default: once)")
	if _, err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if *logURL == "" || *name == "" || *keyFile == "" || *statePath == "" {
		fmt.Fprintln(e.stderr, "usage: lethe witness --log URL --name NAME --key WITNESS.key --state STATE.json [--jwks FILE_OR_URL] [--origin O] [--out FILE] [--interval 5m]")
		return errUsage
	}
	pemKey, err := os.ReadFile(*keyFile)
	if err != nil {
		return fmt.Errorf("--key: %w", err)
	}
	key, err := certificate.ParsePrivateKeyPEM(pemKey)
	if err != nil {
		return fmt.Errorf("--key: %w", err)
	}
	w := &witness{
		log: newLogClient(*logURL, &http.Client{Timeout: 30 * time.Second}), cosigner: translog.NewCosigner(*name, key, nil),
		statePath: *statePath, jwks: *jwks, origin: *origin, out: *out,
	}
	if w.jwks == "" {
		w.jwks = w.log.base + "/v1/keys"
	}
	for {
		msg, err := w.round(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, msg)
		if *interval <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*interval):
		}
	}
}

type witness struct {
	log       *logClient
	cosigner  *translog.Cosigner
	statePath string
	jwks      string
	origin    string
	out       string
}

// errInconsistent is a log caught rewriting its history.
var errInconsistent = errors.New("ALERT: the log is not consistent with what this witness saw before")

func (w *witness) round(ctx context.Context) (string, error) {
	prev, err := w.loadState()
	if err != nil {
		return "", err
	}
	origin := w.origin
	if origin == "" && prev != nil {
		origin = prev.Origin
	}
	keys, err := certificate.LoadKeySet(ctx, w.jwks, w.log.client)
	if err != nil {
		return "", fmt.Errorf("log keys: %w", err)
	}
	cp, signed, err := w.log.latest(ctx, origin, keys.PublicKeys())
	if err != nil {
		return "", fmt.Errorf("latest checkpoint: %w", err)
	}
	seen := "first checkpoint seen; trusting it from now on"
	if prev != nil {
		root, err := base64.StdEncoding.DecodeString(prev.Root)
		if err != nil || len(root) != len(translog.Hash{}) {
			return "", fmt.Errorf("state %s: bad root", w.statePath)
		}
		old := translog.Checkpoint{Origin: prev.Origin, Size: prev.Size, Root: translog.Hash(root)}
		if err := w.log.consistent(ctx, old, cp); err != nil {
			return "", fmt.Errorf("%w: %d entries then, %d now: %v", errInconsistent, old.Size, cp.Size, err)
		}
		seen = fmt.Sprintf("consistent with the %d entries seen before", old.Size)
	}
	cosigned, err := w.cosigner.Cosign(signed)
	if err != nil {
		return "", err
	}
	state := witnessState{Origin: cp.Origin, Size: cp.Size, Root: base64.StdEncoding.EncodeToString(cp.Root[:]), Checkpoint: string(cosigned)}
	if err := w.saveState(state); err != nil {
		return "", err
	}
	if w.out != "" {
		if err := os.WriteFile(w.out, cosigned, 0o644); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("log %s: checkpoint of %d entries, %s; cosigned as %s", cp.Origin, cp.Size, seen, w.cosigner.Name()), nil
}

func (w *witness) loadState() (*witnessState, error) {
	b, err := os.ReadFile(w.statePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s witnessState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("state %s: %w", w.statePath, err)
	}
	return &s, nil
}

// saveState replaces the state file atomically, so a crash never leaves a
// witness without its memory.
func (w *witness) saveState(s witnessState) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(w.statePath), "."+filepath.Base(w.statePath)+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, w.statePath)
}
