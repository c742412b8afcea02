package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/bolt"
	"github.com/stickypub/stickypub/backend/memory"
	"github.com/stickypub/stickypub/bench/harness"
)

// benchFlags are the flags of the bench command.
type benchFlags struct {
	stores     []string
	publishers []int
	messages   int
	payload    int
	asJSON     bool
	chart      string
	progress   string
}

func newBenchCmd(a *app) *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure publish throughput by publisher count on one or more stores",
		Long: `Measure the sticky pub/sub publish throughput against a store, for each
publisher count of --publishers: that many publishers (each an identity of
its own with its own client and store handle) publish --messages messages
each, one at a time, to a fresh topic. Before each, a baseline is measured
in the same run on the same store: as many writers doing raw
compare-and-puts of the same size, each on its own key. The ratio is
messages per second over raw writes per second.

--stores measures several stores in one run (default: --store). On a mem:
store the publishers share one in-process space; on a bolt file they share
the process's one handle (bbolt allows one per process); every other store
is opened once per publisher. The benchmark writes a topic bench/<random>
into the store and leaves it there.

A progress bar is drawn on stderr when it is a terminal; a table (or
--json) is printed at the end; --chart draws messages per second by
publisher count for each store into a PNG or SVG file.`,
		Example: `  stickypub bench --store mem: --publishers 1,10,100 --messages 200
  stickypub bench --stores bolt:bench.db,redis://127.0.0.1:6379/0 --chart bench.png
  stickypub bench --json --store redis://127.0.0.1:6379/0 > bench.json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.messages <= 0 || f.payload <= 0 {
				return usagef("--messages and --payload must be positive")
			}
			if len(f.publishers) == 0 {
				return usagef("--publishers needs at least one count")
			}
			for _, p := range f.publishers {
				if p <= 0 {
					return usagef("--publishers: counts must be positive, got %d", p)
				}
			}
			switch strings.ToLower(filepath.Ext(f.chart)) {
			case "", ".png", ".svg":
			default:
				return usagef("--chart: want a .png or .svg file, got %q", f.chart)
			}
			switch f.progress {
			case "auto", "always", "never":
			default:
				return usagef("--progress: want auto, always or never, got %q", f.progress)
			}
			if len(f.stores) == 0 {
				f.stores = []string{a.store}
			}
			return a.bench(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.stores, "stores", nil, "store URIs to measure, comma-separated (default: --store)")
	fl.IntSliceVar(&f.publishers, "publishers", []int{1, 10, 100}, "publisher counts to measure")
	fl.IntVarP(&f.messages, "messages", "n", 100, "messages per publisher")
	fl.IntVar(&f.payload, "payload", harness.DefaultPayloadSize, "payload size in bytes")
	fl.BoolVar(&f.asJSON, "json", false, "print the results as JSON instead of a table")
	fl.StringVar(&f.chart, "chart", "", "draw throughput by publisher count into `FILE` (.png or .svg)")
	fl.StringVar(&f.progress, "progress", "auto", "progress bar on stderr: auto (if a terminal), always, never")
	return cmd
}

func (a *app) bench(cmd *cobra.Command, f benchFlags) error {
	ctx := cmd.Context()
	var all []harness.Result
	for _, uri := range f.stores {
		res, err := a.benchStore(ctx, uri, f)
		all = append(all, res...)
		if err != nil {
			if ctx.Err() != nil {
				return errInterrupted
			}
			return err
		}
	}
	if f.asJSON {
		if err := writeJSON(a.stdout, all); err != nil {
			return err
		}
	} else if err := writeBenchTable(a.stdout, all); err != nil {
		return err
	}
	if f.chart != "" {
		if err := writeBenchChart(f.chart, all); err != nil {
			return fmt.Errorf("--chart: %w", err)
		}
		if !f.asJSON {
			fmt.Fprintf(a.stdout, "chart written to %s\n", f.chart)
		}
	}
	return nil
}

// benchStore runs the benchmark on one store URI.
func (a *app) benchStore(ctx context.Context, uri string, f benchFlags) ([]harness.Result, error) {
	name := storeScheme(uri)
	cfg := harness.Config{Backend: name, Publishers: f.publishers, Messages: f.messages, PayloadSize: f.payload}
	switch name {
	case memory.Scheme:
		st, err := backend.Open(ctx, uri)
		if err != nil {
			return nil, err
		}
		defer st.Close()
		ms, ok := st.(*memory.Store)
		if !ok {
			return nil, fmt.Errorf("mem: store is a %T", st)
		}
		cfg.Open = func(context.Context) (backend.Store, error) { return ms.Space().Open(), nil }
	case bolt.Scheme:
		st, _, err := openStore(ctx, uri, a.logger, false)
		if err != nil {
			return nil, err
		}
		defer st.Close()
		cfg.Open = func(context.Context) (backend.Store, error) { return st, nil }
		cfg.Release = func(backend.Store) {}
	default:
		cfg.Open = func(ctx context.Context) (backend.Store, error) { return backend.Open(ctx, uri) }
	}
	if bar := a.progressBar(f.progress, name, harness.Total(cfg)); bar != nil {
		cfg.Progress = func(int64, int64) { _ = bar.Add(1) }
		defer func() { _ = bar.Finish(); fmt.Fprintln(a.stderr) }()
	}
	return harness.Run(ctx, cfg)
}

// progressBar returns a progress bar on stderr, or nil when there should
// be none.
func (a *app) progressBar(mode, name string, total int64) *progressbar.ProgressBar {
	if mode == "never" {
		return nil
	}
	if mode == "auto" {
		f, ok := a.stderr.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return nil
		}
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(a.stderr),
		progressbar.OptionSetDescription(fmt.Sprintf("%-6s", name)),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("ops"),
		progressbar.OptionThrottle(100*time.Millisecond),
	)
}

// writeBenchTable prints the results as an aligned table.
func writeBenchTable(w io.Writer, res []harness.Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "backend\tpublishers\tmessages\tseconds\tmsgs/s\tp50 ms\tp99 ms\tretries\traw writes/s\tratio\t")
	for _, r := range res {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%.0f\t%.2f\t%.2f\t%d\t%.0f\t%.3f\t\n", r.Backend, r.Publishers, r.Messages,
			r.Seconds, r.MsgsPerSec, r.P50Ms, r.P99Ms, r.Retries, r.BaselineWritesPerSec, r.Ratio)
	}
	return tw.Flush()
}

// errNoResults: there is nothing to draw.
var errNoResults = errors.New("no results to draw")
