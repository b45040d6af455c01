// Package app is the lethe command: it parses arguments and assembles the
// store, NATS, connectors, coordinator and HTTP server for each subcommand.
// cmd/lethe only calls Run, so tests run the real program in-process.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

// Version is set at build time with -ldflags "-X …/internal/app.Version=…".
var Version = "dev"

const usage = `lethe carries out GDPR right-to-be-forgotten requests across your systems
and issues signed erasure certificates.

Usage:
  lethe dev     [--addr 127.0.0.1:8080] [--data-dir ./lethe-data]
                    everything on one machine, no setup: embedded NATS and SQLite,
                    demo connectors and demo data
  lethe serve   --config lethe.yaml [--no-migrate] [--no-workers]
                    production: PostgreSQL and a NATS cluster
  lethe worker  --config lethe.yaml [--connectors a,b]
                    only the connector workers (all, or the named instances); reads
                    NATS and the connectors' settings, no database, keys or tokens
  lethe migrate --config lethe.yaml
                    apply the database schema
  lethe cert verify FILE (--key PUBLIC_KEY.pem | --jwks FILE_OR_URL) [--origin O]
                    [--log URL] [--email E --nonce N]
                    check a certificate offline: signature, key, transparency log;
                    with --log also that the log still holds it
  lethe replay  --config lethe.yaml --since YYYY-MM-DD [--dry-run]
                    after restoring a backup taken on that date, erase again the people
                    erased since (found through the suppression list)
  lethe rewrap  --config lethe.yaml
                    re-wrap every data key with the first (newest) key-encryption key
  lethe witness --log URL --name NAME --key WITNESS.key --state STATE.json
                    check the log only grows and countersign its checkpoint
  lethe passwd  --password-file FILE
                    bcrypt a console password (from FILE; "-" reads standard input)
                    for console.users[].password_hash
  lethe keygen  --out DIR
                    make a signing key, a subject hash key and an admin token
  lethe config check --config lethe.yaml [--no-workers | --worker [--connectors a,b]]
                    validate a config file, its keys and its connectors, as serve reads it
                    (with --no-workers: only connectors taking callbacks); with --worker
                    only what a worker reads (NATS and the connectors it runs)
  lethe version

Environment: LETHE_FAILPOINTS (tests only).
`

// env is what a command receives from the outside world.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

// errUsage marks a mistake in the command line: exit code 2.
var errUsage = errors.New("usage")

// Run runs the lethe command with args (args[0] is the program name) and
// returns the exit code.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	e := env{getenv: getenv, stdout: stdout, stderr: stderr}
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[1], args[2:]
	var err error
	switch cmd {
	case "dev":
		err = runDev(ctx, e, rest)
	case "serve":
		err = runServe(ctx, e, rest)
	case "worker":
		err = runWorker(ctx, e, rest)
	case "migrate":
		err = runMigrate(ctx, e, rest)
	case "cert":
		if len(rest) == 0 || rest[0] != "verify" {
			fmt.Fprintln(stderr, "usage: lethe cert verify FILE [--key PUBLIC_KEY.pem | --jwks FILE_OR_URL]")
			return 2
		}
		return runCertVerify(ctx, e, rest[1:])
	case "replay":
		err = runReplay(ctx, e, rest)
	case "rewrap":
		err = runRewrap(ctx, e, rest)
	case "witness":
		err = runWitness(ctx, e, rest)
	case "keygen":
		err = runKeygen(e, rest)
	case "passwd":
		err = runPasswd(e, rest)
	case "config":
		if len(rest) == 0 || rest[0] != "check" {
			fmt.Fprintln(stderr, "usage: lethe config check --config lethe.yaml [--no-workers | --worker [--connectors a,b]]")
			return 2
		}
		err = runConfigCheck(ctx, e, rest[1:])
	case "version", "--version":
		fmt.Fprintln(stdout, "lethe", Version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "lethe: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		return 2
	}
	fmt.Fprintln(stderr, "lethe:", err)
	return 1
}

// parseFlags parses a subcommand's flags, allowing flags after positional
// arguments ("cert verify FILE --key K"), and returns the positionals.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) ([]string, error) {
	fs.SetOutput(stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		// Parse stopped at a positional argument (or after "--").
		pos = append(pos, args[0])
		args = args[1:]
	}
}
