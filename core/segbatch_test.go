package core

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// One bad segment among good ones, at every position, in batches small
// enough for one goroutine and large enough to be split: only that one
// is rejected, and every other one gets the messages verifySegment gives.
func TestVerifyPreparedOneForged(t *testing.T) {
	ids := make([]*Identity, 5)
	for i := range ids {
		var err error
		ids[i], err = GenerateIdentity()
		require.NoError(t, err)
	}
	for _, n := range []int{2, 7, 2*minBatchPerWorker + 3} {
		segs := make([]*segment, n)
		for i := range segs {
			segs[i] = signedTestSegment(t, ids[i%len(ids)], uint64(1+10*i), 1+i%3)
		}
		spoil := map[string]func(*segment){
			"payload altered": func(sg *segment) { sg.Msgs[0].Payload = []byte("forged") },
			"first moved":     func(sg *segment) { sg.First++ },
			"other key":       func(sg *segment) { sg.Publisher = ids[(n+1)%len(ids)].PublicKey(); sg.Msgs[0].Payload = []byte("x") },
		}
		for name, f := range spoil {
			for bad := range n {
				ps := make([]*segPrep, n)
				for i, sg := range segs {
					cp := *sg
					cp.Msgs = append([]segMsg(nil), sg.Msgs...)
					if i == bad {
						f(&cp)
					}
					p, err := prepareSegment("t", &cp)
					require.NoError(t, err)
					ps[i] = p
				}
				got := verifyPrepared(ps)
				for i, msgs := range got {
					name := fmt.Sprintf("n=%d %s at %d: segment %d", n, name, bad, i)
					single, err := verifySegment("t", ps[i].seg)
					if i == bad {
						require.Nil(t, msgs, name)
						require.ErrorIs(t, err, ErrBadSignature, name)
						continue
					}
					require.NoError(t, err, name)
					require.Len(t, msgs, len(single), name)
					for j := range msgs {
						require.Equal(t, single[j].Seq, msgs[j].Seq, name)
						require.Equal(t, single[j].Payload, msgs[j].Payload, name)
						require.NoError(t, mustProof(t, msgs[j]).Verify(), name)
					}
				}
			}
		}
	}
}

func mustProof(t *testing.T, m *Message) *Proof {
	t.Helper()
	p, err := m.Proof()
	require.NoError(t, err)
	return p
}

// Nil entries (segments that did not decode) are skipped, not counted as
// bad signatures of their neighbours.
func TestVerifyPreparedSkipsNil(t *testing.T) {
	id, err := GenerateIdentity()
	require.NoError(t, err)
	p, err := prepareSegment("t", signedTestSegment(t, id, 1, 2))
	require.NoError(t, err)
	got := verifyPrepared([]*segPrep{nil, p, nil})
	require.Nil(t, got[0])
	require.Len(t, got[1], 2)
	require.Nil(t, got[2])
	require.Empty(t, verifyPrepared(nil))
}
