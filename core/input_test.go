package core

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Errors quote user input and cut it short: a 10 KB topic is not echoed
// whole, a newline does not break the line.
func TestErrorsQuoteAndTruncateInput(t *testing.T) {
	ctx := testCtx(t)
	c := newClient(t, newMem(t))
	long := strings.Repeat("x", 10<<10)
	_, err := c.Publish(ctx, long, []byte("m"))
	require.ErrorIs(t, err, ErrInvalidTopic)
	assert.Less(t, len(err.Error()), 200, err.Error())
	assert.Contains(t, err.Error(), "(10240 bytes)")
	assert.Equal(t, `"a\nb"`, QuoteInput("a\nb"))
	assert.Equal(t, `"`+strings.Repeat("é", 32)+`"…(128 bytes)`, QuoteInput(strings.Repeat("é", 64)))
}

// A subscription WithoutRecord writes nothing: it works on a store that
// refuses writes, and Info does not list it.
func TestSubscribeWithoutRecord(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	pub := newClient(t, store)
	_, err := pub.Publish(ctx, "t", []byte("a"))
	require.NoError(t, err)
	ro := &readOnlyStore{Store: store}
	sc := newClient(t, ro)
	sub, err := sc.Subscribe(ctx, "t", FromStart(), WithoutPush(), WithoutRecord())
	require.NoError(t, err)
	msgs := receive(t, ctx, sc, sub, 1)
	assert.Equal(t, "a", string(msgs[0].Payload))
	info, err := pub.Info(ctx, "t")
	require.NoError(t, err)
	assert.Empty(t, info.Subscribers)
	require.NoError(t, sc.Renew(ctx, "t"))
	require.NoError(t, sc.Unsubscribe(ctx, "t"))
	assert.Zero(t, ro.writes.Load())
}

func TestCheckStoredRecord(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	pub := newClient(t, store)
	segs := publishBatches(t, ctx, store, pub, "t", 1, 3)
	key := blobKey(segs[0])
	e, err := store.Get(ctx, key)
	require.NoError(t, err)
	require.NoError(t, CheckStoredRecord(key, e.Value))
	c, err := store.Get(ctx, "c/"+newTopicKeys("t").id)
	require.NoError(t, err)
	require.NoError(t, CheckStoredRecord("c/"+newTopicKeys("t").id, c.Value))
	require.ErrorIs(t, CheckStoredRecord("c/x", []byte{coordInline, 0xff}), ErrMalformed)
	flipped := []byte(strings.Replace(string(e.Value), "m2", "m3", 1))
	require.ErrorIs(t, CheckStoredRecord(key, flipped), ErrMalformed)
	require.ErrorIs(t, CheckStoredRecord("x/short", e.Value), ErrMalformed)
}
