// Package bittorrent is the BitTorrent mainline DHT adapter of the backend
// contract: every key is a BEP44 mutable item under one namespace Ed25519
// key, built on github.com/anacrolix/dht/v2.
//
// # Mapping
//
// The item of key has salt len(prefix) ‖ prefix ‖ 0x00 ‖ key (a key too long
// for the 64-byte salt is carried as 0x01 ‖ SHA-256(key)), so its target is
// SHA-1(public key ‖ salt). Its v is the value as one bencoded byte string
// (at most 1,000 bytes encoded, so MaxValueSize is 996); its seq is the
// entry's version; a compare-and-put from version e writes seq e+1 with
// cas e (no cas when creating). Signatures follow BEP44 exactly (known-answer
// tests with the spec's vectors), so items signed by any spec-following
// implementation under the namespace key are read, and items written here
// are accepted by any spec-following node.
//
// # Who can write
//
// Whoever holds the namespace's private key (Options.PrivateKey, a key
// file) can write every key of the namespace; the storing nodes only check
// signatures, so they cannot forge or alter items. A handle opened with the
// public key alone is read-only: CompareAndPut fails with ErrReadOnly. The
// protocol's own signatures (core) still decide whose messages are
// delivered; the namespace key decides who can write records at all.
//
// # Quorums
//
// Get and CompareAndPut read the Replicas (8) closest nodes that answer,
// found by a DHT traversal (or, within ViewTTL, by asking the nodes found
// last time directly). A write succeeds when WriteQuorum (5) distinct node
// IDs accept it; the closest node is asked first and arbitrates between
// racing writers. Get needs ReadQuorum (4) answers, verifies every item,
// takes the highest seq and re-puts that signed item to nodes that lack it
// or hold an older one. On a set found within ViewTTL, Get asks only its
// ReadQuorum nearest nodes, and the others only when one of those fails. Consistency is backend.PerNodeCAS: each node
// applies cas atomically, but two writers whose closest sets differ (churn)
// can both succeed, and a failed write can become visible.
//
// # Storing nodes
//
// A network for this adapter is made of Node values (NewNode, NewSwarm,
// `stickypub swarm --backend bittorrent`), whose store applies the spec's
// rules (301 when cas is not the stored seq, 302 when seq is lower, or
// equal with another value); the library's own store compares cas with the
// stored cas instead (anacrolix/dht#81). Handles run passive (BEP43
// read-only) servers whose store keeps nothing, so a refused put never
// lingers where a read could find it. Every server gets its own send
// limiter, explicit StartingNodes (never the public routers) and an explicit
// item lifetime.
//
// # Lifetime
//
// Storing nodes drop an item RecordLifetime (2 h) after its last put. A
// handle re-puts every signed item it wrote or read within RepublishWindow
// (24 h) every RepublishInterval (1 h) while it is open.
//
// # URIs
//
// The package registers the scheme "bep44":
//
//	bep44://?bootstrap=127.0.0.1:6881,127.0.0.1:6882&key=/path/ns.pem&listen=127.0.0.1:0
//
// See ParseURI for every parameter.
package bittorrent
