package bittorrent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"

	"github.com/anacrolix/dht/v2"
	"github.com/anacrolix/dht/v2/bep44"
	"github.com/anacrolix/dht/v2/int160"
	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/dht/v2/traversal"
	"github.com/anacrolix/dht/v2/types"
	"github.com/anacrolix/torrent/bencode"

	"github.com/stickypub/stickypub/backend"
)

// peer is one storing node that answered a get with a write token.
type peer struct {
	id    krpc.ID
	addr  *net.UDPAddr
	token string
	// item is the node's verified item, nil when it holds none (or only
	// a bad one).
	item *item
}

// view is what one traversal learned: the closest nodes that answered,
// nearest first, at most Replicas of them, each a distinct node ID.
type view struct {
	target Target
	salt   []byte
	peers  []*peer
}

// bestKnown is best, raised to the item the handle itself wrote or read
// for this target when that one is newer: a read that reached nodes that
// missed a write (some of the closest nodes were slow, so farther ones
// answered) must not send the handle back in time. The remembered item is
// signed, so it is as good as one a node returned.
func (v *view) bestKnown(s *Store) (item, bool) {
	b, ok := v.best()
	if mine, have := s.repub.known(v.target); have && (!ok || mine.Seq > b.Seq) {
		return mine, true
	}
	return b, ok
}

// best returns the item to trust: the highest seq; among items of equal
// seq (two writers split the nodes) the one most nodes hold, then the
// smallest signature, so every reader picks the same one.
func (v *view) best() (item, bool) {
	type cand struct {
		it    item
		count int
	}
	var cands []*cand
	for _, p := range v.peers {
		if p.item == nil {
			continue
		}
		found := false
		for _, c := range cands {
			if c.it.sameAs(*p.item) {
				c.count++
				found = true
				break
			}
		}
		if !found {
			cands = append(cands, &cand{it: *p.item, count: 1})
		}
	}
	if len(cands) == 0 {
		return item{}, false
	}
	b := cands[0]
	for _, c := range cands[1:] {
		switch {
		case c.it.Seq != b.it.Seq:
			if c.it.Seq > b.it.Seq {
				b = c
			}
		case c.count != b.count:
			if c.count > b.count {
				b = c
			}
		case string(c.it.Sig[:]) < string(b.it.Sig[:]):
			b = c
		}
	}
	return b.it, true
}

// readMode says how a read uses a cached closest set.
type readMode int

const (
	// askAll asks every node of the set: the read before a write needs
	// every node's write token, and the republisher re-puts to every node.
	askAll readMode = iota
	// quorumFirst asks the need nearest nodes of the set first and the
	// others only when one of those fails (Get).
	quorumFirst
)

// read fetches the item of target from its closest nodes. When the handle
// traversed towards target within ViewTTL it asks the nodes found then,
// directly and in parallel (see direct); if that does not give an answer,
// or if there is no recent view, it traverses the DHT. Every item returned
// is verified; it fails unless need distinct nodes answered (ReadQuorum
// for a read, WriteQuorum for the read before a write: a write through
// fewer nodes cannot reach its quorum, and a closest set found while some
// nodes were not answering must not keep every write of the next ViewTTL
// from reaching it).
func (s *Store) read(ctx context.Context, target Target, salt []byte, need int, mode readMode) (*view, error) {
	if addrs := s.views.get(target, s.opts.ViewTTL); len(addrs) >= need && !s.anyDead(addrs) {
		v, err := s.direct(ctx, target, salt, addrs, need, mode)
		if err != nil || v != nil {
			return v, err
		}
	}
	s.stats.traversals.Add(1)
	peers, err := s.traverse(ctx, target, salt, true)
	if err == nil && len(peers) < need {
		// Too many nodes are being skipped as dead: ask them anyway.
		s.stats.retraversals.Add(1)
		peers, err = s.traverse(ctx, target, salt, false)
	}
	if err != nil {
		return nil, err
	}
	v, err := s.closest(target, salt, peers, need)
	if err != nil {
		return nil, err
	}
	addrs := make([]*net.UDPAddr, len(v.peers))
	for i, p := range v.peers {
		addrs[i] = p.addr
	}
	s.views.put(target, addrs)
	return v, nil
}

// direct reads target from its cached closest set addrs (nearest first)
// without a traversal. It returns nil (and no error) when the caller must
// traverse instead.
//
// With askAll every node of the set is asked and every one must answer
// (distinct node IDs): a silent node means the set changed.
//
// With quorumFirst only the need nearest nodes are asked; when all of them
// answer, that is the read (any need nodes of the set meet any write
// quorum of it). When one of them does not answer (or answers without a
// token, or under another's node ID), the rest of the set is asked (the
// second wave) and the read stands if need distinct nodes of the set
// answered in both waves together, the same quorum the first wave needs;
// the set is dropped, so that the next operation on target traverses and
// finds the nodes that replace a silent one. With fewer answers it
// traverses at once.
func (s *Store) direct(ctx context.Context, target Target, salt []byte, addrs []*net.UDPAddr, need int, mode readMode) (*view, error) {
	first := addrs
	if mode == quorumFirst {
		first = addrs[:need]
	}
	byID := make(map[krpc.ID]*peer, len(addrs))
	s.directRound(ctx, target, salt, first, byID)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(byID) == len(first) {
		s.stats.direct.Add(1)
		if len(first) < len(addrs) {
			s.stats.firstWave.Add(1)
		}
		return s.closest(target, salt, slices.Collect(maps.Values(byID)), need)
	}
	if len(first) == len(addrs) {
		return nil, nil
	}
	s.stats.secondWaves.Add(1)
	s.directRound(ctx, target, salt, addrs[len(first):], byID)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.views.drop(target)
	if len(byID) < need {
		return nil, nil
	}
	s.stats.direct.Add(1)
	return s.closest(target, salt, slices.Collect(maps.Values(byID)), need)
}

// closest keeps the Replicas answers closest to target, nearest first, and
// checks that at least need nodes answered.
func (s *Store) closest(target Target, salt []byte, peers []*peer, need int) (*view, error) {
	t := int160.FromByteArray(target)
	slices.SortFunc(peers, func(a, b *peer) int {
		return int160.FromByteArray(a.id).Distance(t).Cmp(int160.FromByteArray(b.id).Distance(t))
	})
	if len(peers) > s.opts.Replicas {
		peers = peers[:s.opts.Replicas]
	}
	if len(peers) < need {
		s.stats.shortReads.Add(1)
		return nil, fmt.Errorf("%d storing nodes answered (need %d): %w: %w", len(peers), need, ErrNoQuorum, backend.ErrUnavailable)
	}
	return &view{target: target, salt: salt, peers: peers}, nil
}

// getOne sends one get query and returns the answering node (with its
// verified item, if any), or nil when it did not answer with a token.
func (s *Store) getOne(ctx context.Context, target Target, salt []byte, addr krpc.NodeAddr) (*peer, dht.QueryResult) {
	qctx, cancel := context.WithTimeout(ctx, 2*s.opts.QueryTimeout)
	defer cancel()
	res := s.srv.Get(qctx, dht.NewAddr(addr.UDP()), bep44.Target(target), nil, dht.QueryRateLimiting{})
	s.noteAnswer(addr.UDP(), res, ctx)
	r := res.Reply.R
	if res.Err != nil || r == nil || r.Token == nil || *r.Token == "" {
		return nil, res
	}
	p := &peer{id: r.ID, addr: addr.UDP(), token: *r.Token}
	if it, bad := s.verifyReply(r, salt); bad != nil {
		s.noteBad(addr.UDP(), *bad)
	} else {
		p.item = it
	}
	return p, res
}

// directRound asks each of addrs for target in parallel and adds the nodes
// that answered to byID, keeping the first answer under each node ID.
func (s *Store) directRound(ctx context.Context, target Target, salt []byte, addrs []*net.UDPAddr, byID map[krpc.ID]*peer) {
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, _ := s.getOne(ctx, target, salt, krpc.NodeAddr{IP: a.IP, Port: a.Port})
			if p == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if _, dup := byID[p.id]; !dup {
				byID[p.id] = p
			}
		}()
	}
	wg.Wait()
}

// traverse walks the DHT towards target with get queries and returns every
// distinct node that answered with a token. With skipDead it does not ask
// nodes marked dead.
func (s *Store) traverse(ctx context.Context, target Target, salt []byte, skipDead bool) ([]*peer, error) {
	var (
		mu    sync.Mutex
		byID  = make(map[krpc.ID]*peer)
		forms = make(map[int160.T]string)
	)
	op := traversal.Start(traversal.OperationInput{
		Target: krpc.ID(target),
		Alpha:  max(3, s.opts.Replicas),
		K:      s.opts.Replicas,
		DoQuery: func(qctx context.Context, addr krpc.NodeAddr) traversal.QueryResult {
			p, res := s.getOne(qctx, target, salt, addr)
			tqr := res.TraversalQueryResult(addr)
			if p == nil {
				tqr.ResponseFrom = nil
				tqr.ClosestData = nil
				return tqr
			}
			tqr.ClosestData = p.token
			mu.Lock()
			if _, dup := byID[p.id]; !dup {
				byID[p.id] = p
			}
			mu.Unlock()
			return tqr
		},
		// The library's get asks for nodes6 too, which on IPv4 lists each
		// node again under its IPv4-mapped address: those duplicates would
		// fill the closest set with half as many distinct nodes.
		// A node ID is accepted under the first address form seen.
		NodeFilter: func(n types.AddrMaybeId) bool {
			if !s.srv.TraversalNodeFilter(n) || (skipDead && s.dead.isDead(n.Addr.ToNodeAddr().UDP())) {
				return false
			}
			if !n.Id.Ok {
				return true
			}
			form := n.Addr.String()
			mu.Lock()
			defer mu.Unlock()
			if first, ok := forms[n.Id.Value]; ok {
				return first == form
			}
			forms[n.Id.Value] = form
			return true
		},
	})
	nodes, err := s.srv.TraversalStartingNodes()
	if err != nil {
		op.Stop()
		<-op.Stopped()
		return nil, fmt.Errorf("%w: %v", backend.ErrUnavailable, err)
	}
	op.AddNodes(nodes)
	select {
	case <-op.Stalled():
	case <-ctx.Done():
	}
	op.Stop()
	<-op.Stopped()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	return slices.Collect(maps.Values(byID)), nil
}

// verifyReply checks the item of a get reply. It returns (nil, nil) when
// the node holds no item, the verified item, or the kind of bad item.
func (s *Store) verifyReply(r *krpc.Return, salt []byte) (*item, *BadItemKind) {
	bad := func(k BadItemKind) (*item, *BadItemKind) { return nil, &k }
	if len(r.V) == 0 {
		return nil, nil
	}
	if len(r.V) > MaxEncodedValue {
		return bad(Oversize)
	}
	if [32]byte(s.opts.PublicKey) != r.K {
		return bad(WrongKey)
	}
	if r.Seq == nil || *r.Seq < 1 {
		return bad(Malformed)
	}
	it := &item{Seq: *r.Seq, EncodedV: append([]byte(nil), r.V...), Sig: r.Sig}
	if !s.verified.check(*it, salt, s.opts.PublicKey) {
		return bad(BadSignature)
	}
	if _, err := DecodeValue(it.EncodedV); err != nil {
		return bad(Malformed)
	}
	return it, nil
}

// noteBad counts and logs a bad item.
func (s *Store) noteBad(from *net.UDPAddr, kind BadItemKind) {
	s.stats.bad[kind].Add(1)
	s.opts.Logger.Warn("bittorrent: dropped a bad item", "node", from, "kind", kind.String(),
		"err", &BadItemError{Node: from, Kind: kind})
}

// putResult counts the answers to one put round.
type putResult struct {
	sent, accepted, conflicts int
}

// putQuorum puts next (with cas, when expect > 0) to the nodes of v. The
// closest node is asked first and arbitrates between concurrent writers:
// a writer it refuses with a conflict stops there, so racing writers do
// not split the other nodes between them and all fail. The others are then
// asked in parallel. A node that holds an item older than cur first gets
// cur re-put, so that the cas (which names cur's seq) can match there.
func (s *Store) putQuorum(ctx context.Context, v *view, cur item, haveCur bool, next item, expect int64) putResult {
	var (
		mu  sync.Mutex
		res putResult
		wg  sync.WaitGroup
	)
	one := func(p *peer) {
		if haveCur && p.item != nil && p.item.Seq < cur.Seq {
			_ = s.putOne(ctx, p, v.salt, cur, 0) // repair; failures show in the put below
		}
		err := s.putOne(ctx, p, v.salt, next, expect)
		mu.Lock()
		defer mu.Unlock()
		res.sent++
		switch {
		case err == nil:
			res.accepted++
		case errors.Is(err, backend.ErrConflict):
			res.conflicts++
		}
	}
	if len(v.peers) == 0 {
		return res
	}
	one(v.peers[0])
	if res.conflicts > 0 {
		return res
	}
	for _, p := range v.peers[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			one(p)
		}()
	}
	wg.Wait()
	return res
}

// putOne sends one put and classifies the answer: nil, a conflict
// (301/302, matching backend.ErrConflict), a refusal or a network error.
func (s *Store) putOne(ctx context.Context, p *peer, salt []byte, it item, cas int64) error {
	// The query is built here rather than with Server.Put, which first
	// stores the item in the handle's own store (verifying its signature
	// again) for nothing.
	seq := it.Seq
	args := krpc.MsgArgs{
		Cas:   cas,
		Salt:  salt,
		Seq:   &seq,
		Sig:   it.Sig,
		Token: p.token,
		V:     bencodeRaw(it.EncodedV),
		K:     [32]byte(s.opts.PublicKey),
	}
	qctx, cancel := context.WithTimeout(ctx, 2*s.opts.QueryTimeout)
	defer cancel()
	res := s.srv.Query(qctx, dht.NewAddr(p.addr), "put", dht.QueryInput{MsgArgs: args})
	s.noteAnswer(p.addr, res, ctx)
	if res.Err != nil {
		return res.Err
	}
	if e := res.Reply.Error(); e != nil {
		switch e.Code {
		case krpc.ErrorCodeCasHashMismatched, krpc.ErrorCodeSequenceNumberLessThanCurrent:
			s.stats.conflicts.Add(1)
			return fmt.Errorf("node %v: %d %s: %w", p.addr, e.Code, e.Msg, backend.ErrConflict)
		default:
			s.stats.refusals.Add(1)
			return &PutRefusedError{Node: p.addr, Code: e.Code, Msg: e.Msg}
		}
	}
	return nil
}

// repairAsync re-puts best, in the background, to the nodes of v that lack
// it or hold an older item.
func (s *Store) repairAsync(v *view, best item) {
	var stale []*peer
	for _, p := range v.peers {
		if p.item == nil || p.item.Seq < best.Seq {
			stale = append(stale, p)
		}
	}
	if len(stale) == 0 {
		return
	}
	// The item carries the namespace's signature, so a read-only handle
	// repairs too.
	s.spawn(func() {
		for _, p := range stale {
			if s.putOne(s.ctx, p, v.salt, best, 0) == nil {
				s.stats.repairs.Add(1)
			}
		}
	})
}

// bencodeRaw marks already-bencoded bytes for the library's encoder.
func bencodeRaw(b []byte) bencode.Bytes { return bencode.Bytes(b) }

// noteAnswer records whether addr answered a query: a timeout (not the
// caller's own cancellation) marks it dead for a while.
func (s *Store) noteAnswer(addr *net.UDPAddr, res dht.QueryResult, caller context.Context) {
	switch {
	case res.Err == nil:
		s.dead.alive(addr)
	case caller.Err() == nil && (errors.Is(res.Err, dht.TransactionTimeout) || errors.Is(res.Err, context.DeadlineExceeded)):
		s.stats.timeouts.Add(1)
		s.dead.mark(addr)
	}
}

// anyDead reports whether one of addrs is marked dead.
func (s *Store) anyDead(addrs []*net.UDPAddr) bool {
	for _, a := range addrs {
		if s.dead.isDead(a) {
			return true
		}
	}
	return false
}
