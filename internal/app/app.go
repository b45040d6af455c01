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
	"runtime/debug"
	"strings"
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
  lethe discover (--config lethe.yaml | --dev-data-dir DIR) [--connectors a,b] [--format text|json]
                [--fail-uncovered]
                    find the personal data in databases and file stores that no erasure
                    rule covers: names, kinds and counts, never a value
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
  lethe request file|list|show|approve|deny|extend|retry|cancel|exempt ... [--url URL] [--json]
                    staff work against a running Lethe, with an API token (--token,
                    --token-file or LETHE_TOKEN); lethe request --help lists the verbs
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

// errHelp marks a --help that was answered: exit code 0.
var errHelp = errors.New("help")

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
			fmt.Fprintln(stderr, "usage: lethe cert verify FILE (--key PUBLIC_KEY.pem | --jwks FILE_OR_URL) — lethe cert verify --help says more")
			return 2
		}
		return runCertVerify(ctx, e, rest[1:])
	case "replay":
		err = runReplay(ctx, e, rest)
	case "discover":
		err = runDiscover(ctx, e, rest)
	case "request":
		err = runRequest(ctx, e, rest)
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
		fmt.Fprintln(stdout, "lethe", versionString())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "lethe: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		return 2
	case errors.Is(err, errUncovered):
		return 1 // the report said it
	}
	fmt.Fprintln(stderr, "lethe:", err)
	return 1
}

// parseFlags parses a subcommand's flags, allowing flags after positional
// arguments ("cert verify FILE --key K"), and returns the positionals.
//
// --help prints the command's synopsis and description (from the usage
// text) and its flags to stdout, and the command exits 0; a mistake
// prints them to stderr, and it exits 2.
func parseFlags(fs *flag.FlagSet, args []string, e env) ([]string, error) {
	fs.Usage = func() { commandUsage(fs) }
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
			fs.SetOutput(e.stdout)
			fs.Usage()
			return nil, errHelp
		}
	}
	fs.SetOutput(e.stderr)
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

// commandUsage prints what the usage text says of fs's command (its
// synopsis and description), then its flags.
func commandUsage(fs *flag.FlagSet) {
	w := fs.Output()
	synopsis, description := commandHelp(fs.Name())
	fmt.Fprintf(w, "usage: lethe %s\n", synopsis)
	if description != "" {
		fmt.Fprintf(w, "\n%s\n", description)
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprint(w, "\nflags:\n")
		fs.PrintDefaults()
	}
}

// commandHelp finds command (such as "cert verify") in the usage text:
// its synopsis (the command with its arguments, continued on following
// lines) and its description (the lines indented under it, joined).
func commandHelp(command string) (synopsis, description string) {
	lines := strings.Split(usage+requestUsage, "\n")
	for i, l := range lines {
		rest, ok := strings.CutPrefix(l, "  lethe "+command)
		if !ok || (rest != "" && rest[0] != ' ') {
			continue
		}
		synopsis = command + " " + strings.TrimSpace(rest)
		var desc []string
		for _, d := range lines[i+1:] {
			if !strings.HasPrefix(d, "    ") {
				break
			}
			d = strings.TrimSpace(d)
			if strings.HasPrefix(d, "[") || strings.HasPrefix(d, "--") { // the synopsis goes on
				synopsis += " " + d
				continue
			}
			desc = append(desc, d)
		}
		return strings.TrimSpace(synopsis), strings.Join(desc, " ")
	}
	return command, ""
}

// versionString is Version with what the build recorded of its source:
// the commit, its time and whether the tree had uncommitted changes.
func versionString() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Version + " (no build information)"
	}
	var rev, at, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = ", with uncommitted changes"
			}
		}
	}
	if rev == "" {
		return fmt.Sprintf("%s (%s; no commit recorded: built with -buildvcs=false, outside a git checkout, or by go run or go test)", Version, info.GoVersion)
	}
	return fmt.Sprintf("%s (commit %.12s of %s%s; %s)", Version, rev, at, dirty, info.GoVersion)
}
