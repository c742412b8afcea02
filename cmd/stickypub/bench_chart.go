package main

import (
	"fmt"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/stickypub/stickypub/bench/harness"
)

// writeBenchChart draws messages per second by publisher count, one solid
// line per backend with its raw compare-and-put baseline dashed in the same
// colour, into path (both axes logarithmic: a baseline can be orders of
// magnitude above the protocol) (.png or .svg, from the extension).
func writeBenchChart(path string, res []harness.Result) error {
	if len(res) == 0 {
		return errNoResults
	}
	p := plot.New()
	p.Title.Text = "stickypub publish throughput"
	p.X.Label.Text = "publishers (each with its own identity, client and store handle)"
	p.Y.Label.Text = "per second (log scale)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	var backends []string
	for _, r := range res {
		if !slices.Contains(backends, r.Backend) {
			backends = append(backends, r.Backend)
		}
	}
	for i, b := range backends {
		var msgs, raw plotter.XYs
		for _, r := range res {
			if r.Backend == b {
				msgs = append(msgs, plotter.XY{X: float64(r.Publishers), Y: r.MsgsPerSec})
				raw = append(raw, plotter.XY{X: float64(r.Publishers), Y: r.BaselineWritesPerSec})
			}
		}
		l, pts, err := plotter.NewLinePoints(msgs)
		if err != nil {
			return err
		}
		l.Color, pts.Color, pts.Shape = plotutil.Color(i), plotutil.Color(i), plotutil.Shape(i)
		l.Width = vg.Points(2)
		bl, err := plotter.NewLine(raw)
		if err != nil {
			return err
		}
		bl.Color, bl.Dashes = plotutil.Color(i), []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l, pts, bl)
		p.Legend.Add(b+" messages/s", l, pts)
		p.Legend.Add(b+" raw compare-and-put/s (baseline)", bl)
	}
	if err := p.Save(8*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}
