package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/coverage"
	"github.com/lethe-dev/lethe/internal/telemetry"
	"go.uber.org/zap"
)

// errUncovered: `lethe discover --fail-uncovered` found personal data no
// rule covers, or could not finish: exit code 1.
var errUncovered = errors.New("uncovered personal data")

// runDiscover is `lethe discover`: read the layout of every system whose
// connector can (databases, file stores), and report where personal data
// is that no statement or template erases. It prints names, kinds and
// counts, never a value.
func runDiscover(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("discover", flag.ContinueOnError)
	path := fs.String("config", "", "config file (see config/lethe.example.yaml)")
	devDir := fs.String("dev-data-dir", "", "instead of --config: the data dir of lethe dev (its demo connectors are read)")
	names := fs.String("connectors", "", "comma-separated connector instances (default: all)")
	format := fs.String("format", "text", "text or json")
	failUncovered := fs.Bool("fail-uncovered", false, "exit 1 when anything is uncovered or a discovery fails (for CI)")
	if _, err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintln(e.stderr, "lethe discover: --format must be text or json")
		return errUsage
	}
	var cfg *config.Config
	var err error
	switch {
	case (*path == "") == (*devDir == ""):
		fmt.Fprintln(e.stderr, "lethe discover: give exactly one of --config and --dev-data-dir")
		return errUsage
	case *path != "":
		cfg, err = config.Load(*path)
	default:
		cfg, err = devDiscoveryConfig(*devDir)
	}
	if err != nil {
		return err
	}
	log, err := telemetry.NewLogger(e.stderr, "warn", cfg.Log.Format)
	if err != nil {
		return err
	}
	instances, err := buildConnectors(ctx, cfg, splitNames(*names), e.getenv, log)
	if err != nil {
		return err
	}
	defer closeConnectors(instances)
	var reports []connectors.Coverage
	var cannot []string
	for _, in := range instances {
		d, ok := in.Connector.(connectors.Discoverer)
		if !ok {
			cannot = append(cannot, in.Name+" ("+in.Type+")")
			continue
		}
		progress := func(p connectors.DiscoveryProgress) {
			if p.Total > 0 && p.Done < p.Total {
				fmt.Fprintf(e.stderr, "\r%s: %d/%d %s", in.Name, p.Done, p.Total, p.Unit)
			}
		}
		rep := coverage.Discover(ctx, coverage.Instance{Name: in.Name, Type: in.Type, Discoverer: progressing{d, progress}},
			cfg.Discovery.Timeout, time.Now)
		fmt.Fprintf(e.stderr, "\r%s: done%s\n", in.Name, strings.Repeat(" ", 20))
		if rep.Error != "" {
			log.Warn("discovery failed", zap.String("connector", in.Name), zap.String("error", rep.Error))
		}
		reports = append(reports, rep)
	}
	if *format == "json" {
		if reports == nil {
			reports = []connectors.Coverage{}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(reports); err != nil {
			return err
		}
	} else {
		printCoverage(e.stdout, reports, cannot)
	}
	if *failUncovered {
		for _, r := range reports {
			if r.Error != "" || r.Count(connectors.Uncovered) > 0 {
				return errUncovered
			}
		}
	}
	return nil
}

// progressing hands discovery a progress callback.
type progressing struct {
	d connectors.Discoverer
	p func(connectors.DiscoveryProgress)
}

func (p progressing) Discover(ctx context.Context, _ func(connectors.DiscoveryProgress)) (connectors.Coverage, error) {
	return p.d.Discover(ctx, p.p)
}

// devDiscoveryConfig is the config `lethe dev` runs with for data dir
// dir: its demo connectors are what discovery reads.
func devDiscoveryConfig(dir string) (*config.Config, error) {
	if _, err := os.Stat(filepath.Join(dir, "shop.db")); err != nil {
		return nil, fmt.Errorf("--dev-data-dir %s: no lethe dev data there (run lethe dev first): %w", dir, err)
	}
	cfg, err := config.ParseDev([]byte(devConfig(dir, "127.0.0.1:0", "nats://127.0.0.1:4222", devOptions{})))
	if err != nil {
		return nil, fmt.Errorf("dev config: %w", err)
	}
	return cfg, nil
}

func printCoverage(w io.Writer, reports []connectors.Coverage, cannot []string) {
	uncovered := 0
	for _, r := range reports {
		fmt.Fprintf(w, "%s (%s): %d places read; %d uncovered, %d ignored, %d covered\n", r.Connector, r.Type, r.Places,
			r.Count(connectors.Uncovered), r.Count(connectors.Ignored), r.Count(connectors.Covered))
		if r.Error != "" {
			fmt.Fprintf(w, "  DISCOVERY FAILED: %s (the findings below are what it saw before)\n", r.Error)
		}
		uncovered += r.Count(connectors.Uncovered)
		if len(r.Findings) > 0 {
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  STATUS\tPLACE\tKIND\tSAMPLED\tWHY")
			for _, f := range r.Findings {
				sampled := sampledText(f)
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", strings.ToUpper(string(f.Status)), f.Place, f.Kind, sampled, f.Reason)
			}
			_ = tw.Flush()
		}
		fmt.Fprintln(w)
	}
	for _, c := range cannot {
		fmt.Fprintf(w, "%s: cannot discover: its coverage is not checked\n", c)
	}
	if len(cannot) > 0 {
		fmt.Fprintln(w)
	}
	switch {
	case uncovered > 0:
		verb := "places hold"
		if uncovered == 1 {
			verb = "place holds"
		}
		fmt.Fprintf(w, "%d %s personal data no rule covers: add a statement that erases it, or an ignore: entry with the reason (docs/coverage.md).\n", uncovered, verb)
	case len(reports) > 0:
		fmt.Fprintln(w, "Every place found with personal data is covered or ignored.")
	}
}

// sampledText says how a finding's kind was found: from how many of the
// sampled values, by the column's name, or by a foreign key.
func sampledText(f connectors.Finding) string {
	switch {
	case f.Kind == connectors.DataReference:
		return "foreign key"
	case f.Matched > 0:
		return fmt.Sprintf("%d of %d", f.Matched, f.Sampled)
	}
	return "by name"
}
