package libp2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/multiformats/go-base32"
	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// absentDatastore makes a storing node compare every incoming record of the
// project's namespace with something: where the datastore holds nothing
// for a key, Get returns the absence marker (version 0) instead of
// ErrNotFound. The DHT's value store only calls the validator's Select
// when a record is stored, so without this a node holding nothing would
// accept a record expecting any version. Remote readers receive the marker
// too, and read it as "this node has no record".
type absentDatastore struct {
	ds.Batching
	prefix string // "/<namespace>/": the datastore subtree of our records
}

func newAbsentDatastore(inner ds.Batching) *absentDatastore {
	return &absentDatastore{Batching: inner, prefix: "/" + namespace + "/"}
}

// Get implements ds.Read.
func (a *absentDatastore) Get(ctx context.Context, key ds.Key) ([]byte, error) {
	v, err := a.Batching.Get(ctx, key)
	if !errors.Is(err, ds.ErrNotFound) || !strings.HasPrefix(key.String(), a.prefix) {
		return v, err
	}
	full, derr := base32.RawStdEncoding.DecodeString(strings.TrimPrefix(key.String(), a.prefix))
	if derr != nil {
		return v, err
	}
	return proto.Marshal(&recpb.Record{
		Key:          full,
		Value:        absentRecord,
		TimeReceived: time.Now().UTC().Format(time.RFC3339Nano),
	})
}

// boltDatastore is a persistent ds.Batching in one bbolt file, so that a
// storing node keeps its records across restarts.
type boltDatastore struct {
	db *bbolt.DB
}

var dsBucket = []byte("dht")

// openBoltDatastore opens (creating) dir/records.db.
func openBoltDatastore(dir string) (*boltDatastore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("libp2p: datastore directory: %w", err)
	}
	db, err := bbolt.Open(filepath.Join(dir, "records.db"), 0o600, &bbolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("libp2p: opening datastore in %s: %w", dir, err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(dsBucket)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("libp2p: datastore bucket: %w", err)
	}
	return &boltDatastore{db: db}, nil
}

func (b *boltDatastore) Get(_ context.Context, key ds.Key) ([]byte, error) {
	var out []byte
	err := b.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(dsBucket).Get(key.Bytes())
		if v == nil {
			return ds.ErrNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

func (b *boltDatastore) Has(ctx context.Context, key ds.Key) (bool, error) {
	_, err := b.Get(ctx, key)
	if errors.Is(err, ds.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (b *boltDatastore) GetSize(ctx context.Context, key ds.Key) (int, error) {
	v, err := b.Get(ctx, key)
	if err != nil {
		return -1, err
	}
	return len(v), nil
}

func (b *boltDatastore) Put(_ context.Context, key ds.Key, value []byte) error {
	return b.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(dsBucket).Put(key.Bytes(), value) })
}

func (b *boltDatastore) Delete(_ context.Context, key ds.Key) error {
	return b.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(dsBucket).Delete(key.Bytes()) })
}

// Sync implements ds.Write: every Put is already committed.
func (b *boltDatastore) Sync(context.Context, ds.Key) error { return nil }

func (b *boltDatastore) Close() error { return b.db.Close() }

func (b *boltDatastore) Batch(context.Context) (ds.Batch, error) { return ds.NewBasicBatch(b), nil }

// Query implements ds.Read: the entries under q.Prefix, with the rest of
// the query applied naively.
func (b *boltDatastore) Query(_ context.Context, q dsq.Query) (dsq.Results, error) {
	var entries []dsq.Entry
	prefix := []byte(q.Prefix)
	err := b.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(dsBucket).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			e := dsq.Entry{Key: string(k), Size: len(v)}
			if !q.KeysOnly {
				e.Value = bytes.Clone(v)
			}
			entries = append(entries, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return dsq.NaiveQueryApply(q, dsq.ResultsWithEntries(q, entries)), nil
}

var _ ds.Batching = (*boltDatastore)(nil)
