// Package libp2p is the backend adapter for a private libp2p Kademlia DHT
// (github.com/libp2p/go-libp2p-kad-dht): topics stored on a network of
// server nodes that never meets the public IPFS network.
//
// # Network
//
// Nodes use a DHT protocol prefix derived from the network name
// (/stickypub/<network>/kad/1.0.0), TCP only, no relay, no NAT port
// mapping, no mDNS and no default bootstrap peers; a dial filter
// (Options.AllowDial, loopback only for a local Swarm) refuses and counts
// dials elsewhere. Server nodes store records (Swarm, or `stickypub swarm`);
// a Store handle is a DHT client that joins through bootstrap peers.
//
// # Records and compare-and-put
//
// A record under "/stickypub/<prefix>/<key>" carries its version, the
// version it expects to replace, a nonce drawn per CompareAndPut call and
// the value, with a checksum. Every storing node runs the namespace's
// validator: Validate checks the format and the value limit, and Select
// applies compare-and-put under the node's per-key lock (an incoming
// record wins only if it expects the stored version, is an identical
// re-put of the same call, or is a newer repair copy). Two calls writing
// the same bytes at one version are two writes: at most one wins. A node
// that holds nothing compares with an absence marker of version 0.
//
// CompareAndPut sends the record to every peer of the replica set (the
// Replicas closest servers) itself — the library's PutValue reports
// success even when every peer refused — the closest (the key's leader)
// first, and succeeds on a write quorum of acceptances (a majority by
// default). Otherwise the refusing peers are asked what they hold:
// backend.ErrConflict carries the current entry (confirmed as a read
// confirms one), or backend.ErrUnavailable when too few answered. Get reads a read quorum
// under a deadline, returns the highest version that at least Agree
// replicas hold identically (so one lying peer cannot invent a record),
// counts garbage (Stats.Corrupt, backend.ErrCorrupt when every answer is
// garbage) and repairs replicas that are empty or behind. The level this
// gives is backend.PerNodeCAS: see docs/libp2p.md.
//
// Records expire on the storing nodes (RecordLifetime); while it is open,
// a handle re-puts what it wrote or read (the last MaxTracked records,
// within KeepFor when set) every RefreshInterval.
//
// # Push
//
// Store implements backend.Watcher with hints carried over gossipsub on
// one topic per network, relayed by the server nodes, plus a re-read every
// WatchPoll. A hint is only a hint; the DHT is the truth.
//
// # URIs
//
// Importing the package registers the scheme "libp2p":
//
//	libp2p://?network=demo&bootstrap=/ip4/127.0.0.1/tcp/4001/p2p/12D3…&allow_dial=127.0.0.0/8
//
// Parameters: network, bootstrap (repeatable), listen (repeatable),
// allow_dial (CIDR, repeatable), prefix, key_file, lookup (network|table),
// replicas, write_quorum, read_quorum, agree, max_key_size,
// max_value_size, max_tracked, record_lifetime, refresh, keep_for, rpc_timeout,
// read_grace, hint_window, watch_poll, connect_timeout. New accepts an
// existing libp2p host instead.
package libp2p
