package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBenchJSONAndCharts(t *testing.T) {
	e := newEnv(t)
	png := filepath.Join(e.dir, "out.png")
	out := e.ok("bench", "--store", "mem:", "--publishers", "1,3", "--messages", "5", "--json", "--chart", png)
	res := decode[[]struct {
		Backend    string  `json:"backend"`
		Publishers int     `json:"publishers"`
		Messages   int     `json:"messages"`
		MsgsPerSec float64 `json:"msgs_per_sec"`
		Baseline   float64 `json:"baseline_writes_per_sec"`
	}](t, out)
	if len(res) != 2 || res[0].Publishers != 1 || res[1].Publishers != 3 || res[1].Messages != 15 ||
		res[0].Backend != "mem" || res[1].MsgsPerSec <= 0 || res[1].Baseline <= 0 {
		t.Fatalf("results %+v", res)
	}
	b, err := os.ReadFile(png)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("chart is not a PNG (%v)", err)
	}

	svg := filepath.Join(e.dir, "out.svg")
	out = e.ok("bench", "--stores", "mem:,bolt:b.db", "--publishers", "2", "--messages", "3", "--chart", svg)
	for _, want := range []string{"backend", "msgs/s", "ratio", "\n      mem           2", "\n     bolt           2", "chart written to"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if b, err := os.ReadFile(svg); err != nil || !bytes.Contains(b, []byte("<svg")) {
		t.Fatalf("chart is not an SVG (%v)", err)
	}

	r := e.run(nil, "bench", "--chart", "x.gif")
	if r.code != exitUsage || !strings.Contains(r.stderr, ".png or .svg") {
		t.Fatalf("bad --chart: exit %d, %s", r.code, r.stderr)
	}
}
