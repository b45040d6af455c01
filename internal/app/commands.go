package app

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/console"
	"github.com/lethe-dev/lethe/internal/store/postgres"
	"go.uber.org/zap"
)

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// configCommand parses the flags of a subcommand that reads a config file:
// --config plus whatever flags adds, and loads and validates the config.
func configCommand(name string, e env, args []string, flags func(*flag.FlagSet)) (*config.Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	path := fs.String("config", "", "config file (see config/lethe.example.yaml)")
	if flags != nil {
		flags(fs)
	}
	if _, err := parseFlags(fs, args, e); err != nil {
		return nil, err
	}
	if *path == "" {
		fmt.Fprintln(e.stderr, "lethe "+name+": --config is required")
		return nil, errUsage
	}
	return config.Load(*path)
}

func runServe(ctx context.Context, e env, args []string) error {
	var noMigrate, noWorkers *bool
	cfg, err := configCommand("serve", e, args, func(fs *flag.FlagSet) {
		noMigrate = fs.Bool("no-migrate", false, "do not apply database migrations at start-up")
		noWorkers = fs.Bool("no-workers", false, "run no connectors here; lethe worker processes run them")
	})
	if err != nil {
		return err
	}
	return run(ctx, e, cfg, roles{api: true, migrate: !*noMigrate, noWorkers: *noWorkers})
}

func runWorker(ctx context.Context, e env, args []string) error {
	var names *string
	cfg, err := configCommand("worker", e, args, func(fs *flag.FlagSet) {
		names = fs.String("connectors", "", "comma-separated connector instances to run (default: all)")
	})
	if err != nil {
		return err
	}
	return run(ctx, e, cfg, roles{workers: splitNames(*names)})
}

// splitNames splits a --connectors list; empty means all.
func splitNames(list string) []string {
	var only []string
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			only = append(only, n)
		}
	}
	return only
}

func runMigrate(ctx context.Context, e env, args []string) error {
	cfg, err := configCommand("migrate", e, args, nil)
	if err != nil {
		return err
	}
	if cfg.Store.Driver != "postgres" {
		fmt.Fprintln(e.stdout, "SQLite stores are migrated when they are opened; nothing to do.")
		return nil
	}
	url, err := cfg.Store.URL.Reveal(e.getenv)
	if err != nil {
		return fmt.Errorf("config: store.url: %w", err)
	}
	n, err := postgres.Migrate(ctx, url)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "applied %d migration(s); the schema is up to date\n", n)
	return nil
}

func runConfigCheck(ctx context.Context, e env, args []string) error {
	var worker, noWorkers *bool
	var names *string
	cfg, err := configCommand("config check", e, args, func(fs *flag.FlagSet) {
		worker = fs.Bool("worker", false, "check only what lethe worker reads: NATS and the connectors")
		names = fs.String("connectors", "", "with --worker: the connector instances it runs (default: all)")
		noWorkers = fs.Bool("no-workers", false, "check what lethe serve --no-workers reads: only connectors that take callbacks")
	})
	if err != nil {
		return err
	}
	if !*worker {
		if _, _, err := loadSigning(cfg.Signing, e.getenv); err != nil {
			return err
		}
		if _, err := loadHasher(cfg.Subject, e.getenv); err != nil {
			return err
		}
		if _, err := loadTokens(cfg.Auth, e.getenv); err != nil {
			return err
		}
		if _, err := loadKeyRing(cfg.Encryption, e.getenv); err != nil {
			return err
		}
	}
	var only []string
	switch {
	case *worker:
		only = splitNames(*names)
	case *noWorkers:
		only = callbackConnectors(cfg)
	}
	instances, err := buildConnectors(ctx, cfg, only, e.getenv, zap.NewNop())
	if err != nil {
		return err
	}
	closeConnectors(instances)
	for _, in := range instances {
		fmt.Fprintf(e.stdout, "connector %s (%s): ok\n", in.Name, in.Type)
	}
	if !*worker {
		// What each system erases by, and whether the request or a
		// resolver can supply it.
		plans, err := instancePlans(cfg)
		if err != nil {
			return err
		}
		if err := checkResolution(e.stdout, cfg, plans); err != nil {
			return err
		}
	}
	fmt.Fprintln(e.stdout, "config ok")
	return nil
}

func readFileOrStdin(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(io.LimitReader(os.Stdin, 16<<20))
	}
	return os.ReadFile(path)
}

// runPasswd prints the bcrypt hash of a console password read from a file
// or standard input (its first line), so the password never appears on a
// command line or in shell history.
func runPasswd(e env, args []string) error {
	fs := flag.NewFlagSet("passwd", flag.ContinueOnError)
	file := fs.String("password-file", "", `file holding the password ("-": standard input)`)
	if _, err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if *file == "" {
		fmt.Fprint(e.stderr, "lethe passwd: --password-file is required (\"-\" reads standard input: read -rs PW; echo \"$PW\" | lethe passwd --password-file -)\n")
		return errUsage
	}
	var r io.Reader = os.Stdin
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return fmt.Errorf("passwd: %w", err)
		}
		defer f.Close()
		r = f
	}
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("passwd: %w", err)
	}
	hash, err := console.HashPassword(strings.TrimRight(line, "\r\n"))
	if err != nil {
		return fmt.Errorf("passwd: %w", err)
	}
	fmt.Fprintln(e.stdout, hash)
	return nil
}

// runKeygen writes a signing key, a subject hash key and an admin token
// into a directory, refusing to overwrite anything.
func runKeygen(e env, args []string) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	out := fs.String("out", "", "directory to write the keys to")
	if _, err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprintln(e.stderr, "lethe keygen: --out is required")
		return errUsage
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return err
	}
	k, err := newKeys()
	if err != nil {
		return err
	}
	files := []struct {
		name string
		body []byte
		mode os.FileMode
	}{
		{"signing.key", k.signingPEM, 0o600},
		{"signing.pub.pem", k.publicPEM, 0o644},
		{"subject-hash.key", []byte(k.hashKey + "\n"), 0o600},
		{"kek.key", []byte(k.kek + "\n"), 0o600},
		{"admin.token", []byte(k.adminToken + "\n"), 0o600},
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(*out, f.name)); err == nil {
			return fmt.Errorf("%s exists; keygen never overwrites keys", filepath.Join(*out, f.name))
		}
	}
	for _, f := range files {
		if err := writeFileExcl(filepath.Join(*out, f.name), f.body, f.mode); err != nil {
			return err
		}
	}
	sum := sha256Sum(k.adminToken)
	fmt.Fprintf(e.stdout, `Wrote signing.key, signing.pub.pem, subject-hash.key, kek.key and admin.token to %s.
Keep them secret. Back up signing.key and subject-hash.key: without the hash key
no certificate can be matched to a person again. kek.key encrypts the data keys
of live requests: lose it and their identifiers are gone.

In the config:
  signing:
    key: {file: %s}
  subject:
    hash_key: {file: %s}
  encryption:
    keys:
      - {id: kek-%s, key: {file: %s}}
  auth:
    tokens:
      - name: admin
        role: admin
        sha256: %s
`, *out, filepath.Join(*out, "signing.key"), filepath.Join(*out, "subject-hash.key"), time.Now().UTC().Format("20060102"),
		filepath.Join(*out, "kek.key"), hex.EncodeToString(sum[:]))
	return nil
}

type keyMaterial struct {
	signingPEM, publicPEM    []byte
	hashKey, adminToken, kek string
}

func newKeys() (keyMaterial, error) {
	priv, err := certificate.GenerateKey()
	if err != nil {
		return keyMaterial{}, err
	}
	var k keyMaterial
	if k.signingPEM, err = certificate.MarshalPrivateKeyPEM(priv); err != nil {
		return k, err
	}
	if k.publicPEM, err = certificate.MarshalPublicKeyPEM(priv.Public().(ed25519.PublicKey)); err != nil {
		return k, err
	}
	k.hashKey = hex.EncodeToString(randomBytes(32))
	k.kek = hex.EncodeToString(randomBytes(32))
	k.adminToken = randomToken()
	return k, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return b
}

func randomToken() string { return base64.RawURLEncoding.EncodeToString(randomBytes(32)) }

func writeFileExcl(path string, body []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
