package libp2p

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// Change hints travel over libp2p pubsub (gossipsub) on one topic per
// network, relayed by the server nodes. A hint names a key by the first 16
// bytes of SHA-256 of its record key, with the new version. Hints are
// gathered for Options.HintWindow and sent as one message:
//
//	repeated ( hash[16] | uvarint version )
//
// A hint is only a hint: a watch also re-reads its key every
// Options.WatchPoll, and the DHT is the truth.
type keyHash [16]byte

func hashKey(dk string) keyHash {
	s := sha256.Sum256([]byte(dk))
	return keyHash(s[:16])
}

// hinter publishes this handle's hints and dispatches received ones to
// the handle's watches.
type hinter struct {
	s *Store

	mu      sync.Mutex
	pending map[keyHash]uint64
	timer   *time.Timer
	watches map[keyHash]map[*watch]struct{}
	subbed  bool
}

type watch struct {
	in chan backend.Version // from the dispatcher, coalescing
}

func newHinter(s *Store) *hinter {
	return &hinter{s: s, pending: make(map[keyHash]uint64), watches: make(map[keyHash]map[*watch]struct{})}
}

// changed notes that this handle wrote version v of dk: local watches
// hear it at once, other handles after the hint window.
func (h *hinter) changed(dk string, v uint64) {
	kh := hashKey(dk)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dispatchLocked(kh, v)
	if h.s.opts.HintWindow < 0 {
		return
	}
	if v > h.pending[kh] {
		h.pending[kh] = v
	}
	if h.timer == nil {
		h.timer = time.AfterFunc(h.s.opts.HintWindow, h.flush)
	}
}

// flush publishes the pending hints as one message.
func (h *hinter) flush() {
	h.mu.Lock()
	pending := h.pending
	h.pending = make(map[keyHash]uint64)
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	h.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	msg := make([]byte, 0, len(pending)*(16+binary.MaxVarintLen64))
	for kh, v := range pending {
		msg = append(msg, kh[:]...)
		msg = binary.AppendUvarint(msg, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := h.s.n.topic.Publish(ctx, msg); err != nil {
		h.s.log.Debug("libp2p: publishing change hints", "err", err)
	}
}

// dispatchLocked offers v to the watches of kh (caller holds mu).
func (h *hinter) dispatchLocked(kh keyHash, v uint64) {
	for w := range h.watches[kh] {
		backend.Offer(w.in, backend.Version(v))
	}
}

// receive handles one hint message from the topic.
func (h *hinter) receive(msg []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(msg) > 16 {
		var kh keyHash
		copy(kh[:], msg[:16])
		v, n := binary.Uvarint(msg[16:])
		if n <= 0 {
			h.s.stats.corrupt.Add(1)
			return
		}
		msg = msg[16+n:]
		h.dispatchLocked(kh, v)
	}
}

// subscribe starts receiving hints (once per handle).
func (h *hinter) subscribe() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subbed {
		return nil
	}
	sub, err := h.s.n.topic.Subscribe()
	if err != nil {
		return err
	}
	h.subbed = true
	self := h.s.n.id()
	h.s.wg.Go(func() {
		defer sub.Cancel()
		for {
			m, err := sub.Next(h.s.ctx)
			if err != nil {
				return
			}
			if m.ReceivedFrom == self {
				continue // own hints were dispatched when written
			}
			h.receive(m.Data)
		}
	})
	return nil
}

// Watch implements backend.Watcher: the channel receives a key's new
// version after a write through any handle of the network, from pubsub
// hints and from a re-read every Options.WatchPoll.
func (s *Store) Watch(ctx context.Context, key string) (<-chan backend.Version, error) {
	if err := s.check(ctx, key); err != nil {
		return nil, err
	}
	if err := s.hints.subscribe(); err != nil {
		return nil, err
	}
	dk := s.dhtKey(key)
	kh := hashKey(dk)
	w := &watch{in: make(chan backend.Version, 1)}
	out := make(chan backend.Version, 1)
	s.hints.mu.Lock()
	if s.hints.watches[kh] == nil {
		s.hints.watches[kh] = make(map[*watch]struct{})
	}
	s.hints.watches[kh][w] = struct{}{}
	s.hints.mu.Unlock()

	s.wg.Go(func() {
		defer close(out)
		defer func() {
			s.hints.mu.Lock()
			delete(s.hints.watches[kh], w)
			if len(s.hints.watches[kh]) == 0 {
				delete(s.hints.watches, kh)
			}
			s.hints.mu.Unlock()
		}()
		var last backend.Version
		var poll <-chan time.Time
		if s.opts.WatchPoll > 0 {
			t := time.NewTicker(s.opts.WatchPoll)
			defer t.Stop()
			poll = t.C
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.ctx.Done():
				return
			case v := <-w.in:
				if v > last {
					last = v
					backend.Offer(out, v)
				}
			case <-poll:
				rctx, cancel := context.WithTimeout(ctx, s.opts.WatchPoll)
				e, err := s.Get(rctx, key)
				cancel()
				if err == nil && e.Version > last {
					last = e.Version
					backend.Offer(out, e.Version)
				}
			}
		}
	})
	return out, nil
}

var _ backend.Watcher = (*Store)(nil)
