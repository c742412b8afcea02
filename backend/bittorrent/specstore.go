package bittorrent

import (
	"bytes"
	"crypto/sha1"
	"sync"
	"time"

	"github.com/anacrolix/dht/v2/bep44"
	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent/bencode"
)

// specStore is the item store of a storing Node. It applies BEP44's rules
// as the spec states them, which the library's own wrapper does not: the
// library compares an incoming cas with the cas of the stored put
// (anacrolix/dht#81), where the spec compares it with the stored seq.
//
// The library calls Get and then Put through its wrapper; Get hands out
// items with Cas cleared so that the wrapper's cas check never fires, and
// Put re-checks everything under the store's lock, so two concurrent puts
// of one target are decided atomically.
type specStore struct {
	exp time.Duration

	mu    sync.Mutex
	items map[bep44.Target]storedItem
}

// storedItem is an item and when it was last put.
type storedItem struct {
	item *bep44.Item
	at   time.Time
}

var _ bep44.Store = (*specStore)(nil)

func newSpecStore(exp time.Duration) *specStore {
	return &specStore{exp: exp, items: make(map[bep44.Target]storedItem)}
}

// lookup returns the live item of t. The caller holds mu.
func (s *specStore) lookup(t bep44.Target) (*bep44.Item, bool) {
	st, ok := s.items[t]
	if !ok {
		return nil, false
	}
	if time.Since(st.at) >= s.exp {
		delete(s.items, t)
		return nil, false
	}
	return st.item, true
}

// Get implements bep44.Store.
func (s *specStore) Get(t bep44.Target) (*bep44.Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.lookup(t)
	if !ok {
		return nil, bep44.ErrItemNotFound
	}
	c := *it
	c.Cas = 0 // keep the library's wrapper from applying its cas rule
	return &c, nil
}

// Put implements bep44.Store: the spec's rules, in the spec's order (the
// library's wrapper has verified the signature and sizes already).
func (s *specStore) Put(i *bep44.Item) error {
	t := i.Target()
	s.mu.Lock()
	defer s.mu.Unlock()
	if stored, ok := s.lookup(t); ok {
		if err := specCheck(stored, i); err != nil {
			return err
		}
	}
	c := *i
	s.items[t] = storedItem{item: &c, at: time.Now()}
	return nil
}

// Del implements bep44.Store.
func (s *specStore) Del(t bep44.Target) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.items, t)
	return nil
}

// Len returns the number of live items.
func (s *specStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for t := range s.items {
		if _, ok := s.lookup(t); ok {
			n++
		}
	}
	return n
}

// casMismatch reports whether a put of incoming must be refused with 301:
// it names a cas, an item is stored, and the stored seq is not that cas.
// The caller holds mu.
func (s *specStore) casMismatch(target bep44.Target, cas int64) bool {
	if cas == 0 {
		return false
	}
	stored, ok := s.lookup(target)
	return ok && stored.Seq != cas
}

// specCheck applies BEP44's put rules to an incoming item against the
// stored one: 301 when cas is given and is not the stored seq; 302 when
// seq is lower than the stored seq, or equal with another value (an equal
// seq with the same value refreshes the item).
func specCheck(stored, incoming *bep44.Item) error {
	if incoming.Cas != 0 && incoming.Cas != stored.Seq {
		return bep44.ErrCasHashMismatched
	}
	if incoming.Seq < stored.Seq {
		return bep44.ErrSequenceNumberLessThanCurrent
	}
	if incoming.Seq == stored.Seq && !bytes.Equal(bencode.MustMarshal(stored.V), bencode.MustMarshal(incoming.V)) {
		return bep44.ErrSequenceNumberLessThanCurrent
	}
	return nil
}

// putTarget returns the target a put query names (mutable: SHA-1 of key
// and salt).
func putTarget(a *krpc.MsgArgs) bep44.Target {
	return sha1.Sum(append(append([]byte(nil), a.K[:]...), a.Salt...))
}

// nothingStore is the item store of a handle's own (client) server: it
// keeps nothing, so a put the network refused can never linger locally and
// be read back as the network's state. The handle's server is passive
// (BEP43 read-only), so no peer puts to it either.
type nothingStore struct{}

func (nothingStore) Put(*bep44.Item) error                 { return nil }
func (nothingStore) Get(bep44.Target) (*bep44.Item, error) { return nil, bep44.ErrItemNotFound }
func (nothingStore) Del(bep44.Target) error                { return nil }
