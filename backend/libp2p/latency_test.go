package libp2p

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLatencyProbe(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	ctx := testCtx(t, 120*time.Second)
	sw := newTestSwarm(t, ctx, 20, nil)
	for _, lk := range []Lookup{LookupNetwork, LookupTable} {
		st := openStore(t, ctx, sw, func(o *Options) { o.Lookup = lk })
		var v uint64
		start := time.Now()
		const n = 100
		for i := range n {
			nv, err := st.CompareAndPut(ctx, "k"+string(lk), backendVersion(v), fmt.Appendf(nil, "%d", i))
			require.NoError(t, err)
			v = uint64(nv)
		}
		w := time.Since(start) / n
		start = time.Now()
		for range n {
			_, err := st.Get(ctx, "k"+string(lk))
			require.NoError(t, err)
		}
		r := time.Since(start) / n
		start = time.Now()
		for range n {
			_, err := st.replicas(ctx, st.dhtKey("x"))
			require.NoError(t, err)
		}
		t.Logf("%s: write %v read %v lookup %v", lk, w, r, time.Since(start)/n)
	}
}
