package hints

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

func TestCacheCopiesAndBounds(t *testing.T) {
	var c Cache
	c.Cap = 3
	v := []byte("abc")
	c.Put("k", backend.Entry{Value: v, Version: 7})
	v[0] = 'X' // the caller's slice changes: the hint does not
	e, ok := c.Get("k")
	require.True(t, ok)
	require.Equal(t, "abc", string(e.Value))
	e.Value[0] = 'Y' // nor does a reader's copy change it
	e, _ = c.Get("k")
	require.Equal(t, backend.Entry{Value: []byte("abc"), Version: 7}, e)

	for i := range 10 {
		c.Put(strconv.Itoa(i), backend.Entry{Version: 1})
	}
	require.LessOrEqual(t, len(c.m), 3, "bounded by Cap")
	c.Put("9", backend.Entry{Version: 2}) // an existing key never evicts
	e, ok = c.Get("9")
	require.True(t, ok)
	require.EqualValues(t, 2, e.Version)
	c.Drop("9")
	_, ok = c.Get("9")
	require.False(t, ok)
}
