package redis

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/internal/redistest"
)

func TestCluster(t *testing.T) {
	cluster := redistest.StartCluster(t, redistest.LocalOptions{})
	srv := cluster.Server()
	ctx := testCtx(t)

	prefix := redistest.Prefix(t)
	redistest.CleanupPrefix(t, srv, prefix)
	uri := "redis+cluster://" + strings.Join(cluster.Addrs, ",") + "/?prefix=" + url.QueryEscape(prefix)
	st, err := backend.Open(ctx, uri)
	require.NoError(t, err)
	defer st.Close()
	s := st.(*Store)

	// Pick keys whose slots fall on each of the three masters.
	admin := srv.Client(t)
	byNode := map[int][]string{}
	slots := map[int64]bool{}
	for i := 0; len(byNode) < 3 || len(byNode[0])+len(byNode[1])+len(byNode[2]) < 9; i++ {
		key := fmt.Sprintf("key-%d", i)
		slot, err := admin.ClusterKeySlot(ctx, s.RedisKey(key)).Result()
		require.NoError(t, err)
		node := int(slot) * 3 / 16384
		if len(byNode[node]) < 3 {
			byNode[node] = append(byNode[node], key)
			slots[slot] = true
		}
	}
	require.GreaterOrEqual(t, len(slots), 3)

	var keys []string
	for node := range 3 {
		keys = append(keys, byNode[node]...)
	}
	watches := map[string]<-chan backend.Version{}
	for _, key := range keys {
		w, err := s.Watch(ctx, key)
		require.NoError(t, err)
		watches[key] = w
	}

	var wg sync.WaitGroup
	for _, key := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v1, err := s.CompareAndPut(ctx, key, 0, []byte(key))
			if !assertNoErr(t, err) {
				return
			}
			_, err = s.CompareAndPut(ctx, key, 0, []byte("again"))
			if !assertIs(t, err, backend.ErrConflict) {
				return
			}
			e, err := s.Get(ctx, key)
			if !assertNoErr(t, err) || e.Version != v1 || string(e.Value) != key {
				t.Errorf("%s: got %+v", key, e)
				return
			}
			if !assertNoErr(t, s.Delete(ctx, key, v1)) {
				return
			}
			v2, err := s.CompareAndPut(ctx, key, 0, []byte("reborn"))
			if assertNoErr(t, err) && v2 <= v1 {
				t.Errorf("%s: version %d after delete of %d", key, v2, v1)
			}
		}()
	}
	wg.Wait()

	// Every watcher, whatever node owns its key, saw the last version.
	for _, key := range keys {
		e, err := s.Get(ctx, key)
		require.NoError(t, err)
		require.Equal(t, "reborn", string(e.Value))
		deadline := time.After(5 * time.Second)
		for seen := false; !seen; {
			select {
			case v := <-watches[key]:
				seen = v == e.Version
			case <-deadline:
				t.Fatalf("%s: no notification of version %d", key, e.Version)
			}
		}
	}
	// Keys really are spread: every master holds some.
	for i, addr := range cluster.Addrs {
		node := (&redistest.Server{Addrs: []string{addr}}).Client(t)
		n, err := node.DBSize(ctx).Result()
		require.NoError(t, err)
		require.Positive(t, n, "node %d (%s) holds none of the keys", i, addr)
	}
}

func assertNoErr(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}

func assertIs(t *testing.T, err, target error) bool {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("got %v, want %v", err, target)
		return false
	}
	return true
}
