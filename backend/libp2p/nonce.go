package libp2p

import (
	"bytes"
	"crypto/rand"
	"sync"
)

// newNonce returns a fresh record nonce (one per CompareAndPut call).
func newNonce() [nonceSize]byte {
	var n [nonceSize]byte
	_, _ = rand.Read(n[:]) // never fails (crypto/rand)
	return n
}

// maxAmbiguous bounds the ambiguous writes a handle remembers.
const maxAmbiguous = 4096

// ambiguousWrites remembers, per record key, the last write of this handle
// that ended without a verdict (backend.ErrUnavailable, or the caller's
// context ending): it may have landed on some replicas. A later call that
// writes the same value at the same expected version is a retry of that
// write and reuses its nonce, so the replicas that took the first attempt
// take the retry as an identical re-put instead of refusing it as another
// writer's.
type ambiguousWrites struct {
	mu sync.Mutex
	m  map[string]record
}

// remember records rec, a write to dk without a verdict.
func (a *ambiguousWrites) remember(dk string, rec record) {
	rec.value = bytes.Clone(rec.value)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = make(map[string]record)
	}
	if _, ok := a.m[dk]; !ok && len(a.m) >= maxAmbiguous {
		for k := range a.m { // forget an arbitrary one
			delete(a.m, k)
			break
		}
	}
	a.m[dk] = rec
}

// take returns the nonce of the remembered write to dk when rec (a new
// call) retries it (same version, same value), and forgets it, so that of
// two concurrent calls only one is the retry. Any other call to dk also
// forgets it: the key has moved on from that write's point of view.
func (a *ambiguousWrites) take(dk string, rec record) ([nonceSize]byte, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	prev, ok := a.m[dk]
	if !ok {
		return [nonceSize]byte{}, false
	}
	delete(a.m, dk)
	if prev.version != rec.version || !bytes.Equal(prev.value, rec.value) {
		return [nonceSize]byte{}, false
	}
	return prev.nonce, true
}
