package core

// Identities (Ed25519 keys): generating, saving, loading, and publisher IDs.

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Identity is an Ed25519 key pair. Its public key names a publisher (and a
// subscriber); its private key signs messages and records.
type Identity struct {
	priv ed25519.PrivateKey
}

// GenerateIdentity creates a new random identity.
func GenerateIdentity() (*Identity, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("core: generate identity: %w", err)
	}
	return &Identity{priv: priv}, nil
}

// IdentityFromSeed derives an identity from a 32-byte Ed25519 seed.
func IdentityFromSeed(seed []byte) (*Identity, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: seed is %d bytes, want %d", ErrBadIdentity, len(seed), ed25519.SeedSize)
	}
	return &Identity{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// PublicKey returns the identity's public key.
func (id *Identity) PublicKey() ed25519.PublicKey {
	return id.priv.Public().(ed25519.PublicKey)
}

// ID returns the short, printable publisher ID of this identity.
func (id *Identity) ID() PublisherID { return PublisherIDOf(id.PublicKey()) }

func (id *Identity) sign(msg []byte) []byte { return ed25519.Sign(id.priv, msg) }

const pemType = "STICKYPUB ED25519 SEED"

// SaveIdentity writes id to path (mode 0600, directories created 0700) as a
// PEM block holding the 32-byte seed. It writes a file of its own and
// renames it into place, so a reader never sees a partial file.
func SaveIdentity(path string, id *Identity) error {
	tmp, err := writeTemp(path, id)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("core: save identity: %w", err)
	}
	return nil
}

// writeTemp writes id to a new, uniquely named file beside path.
func writeTemp(path string, id *Identity) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("core: save identity: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.new")
	if err != nil {
		return "", fmt.Errorf("core: save identity: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: id.priv.Seed()})
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr, os.Chmod(f.Name(), 0o600)); err != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("core: save identity: %w", err)
	}
	return f.Name(), nil
}

// LoadIdentity reads an identity written by SaveIdentity.
func LoadIdentity(path string) (*Identity, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("core: load identity: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemType {
		return nil, fmt.Errorf("%w: %s is not a stickypub identity file", ErrBadIdentity, path)
	}
	return IdentityFromSeed(block.Bytes)
}

// LoadOrCreateIdentity loads the identity at path, creating and saving a new
// one when the file does not exist. It is safe for processes that start at
// the same time: each writes its candidate under a name of its own and
// hard-links it into place, which fails if the file exists, so exactly one
// identity wins and every process uses it. created reports whether this
// call created it.
func LoadOrCreateIdentity(path string) (id *Identity, created bool, err error) {
	id, err = LoadIdentity(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return id, false, err
	}
	if id, err = GenerateIdentity(); err != nil {
		return nil, false, err
	}
	tmp, err := writeTemp(path, id)
	if err != nil {
		return nil, false, err
	}
	defer os.Remove(tmp)
	switch err := os.Link(tmp, path); {
	case err == nil:
		return id, true, nil
	case errors.Is(err, os.ErrExist):
		id, err := LoadIdentity(path) // another process won
		return id, false, err
	default: // no hard links on this file system: last writer wins
		if err := os.Rename(tmp, path); err != nil {
			return nil, false, fmt.Errorf("core: save identity: %w", err)
		}
		return id, true, nil
	}
}

// PublisherID is a 16-byte digest of a publisher's public key, used in keys
// and coordinator records. A segment carries the full key, and a
// subscriber checks that it hashes to the announced ID.
type PublisherID [16]byte

// PublisherIDOf computes the ID of a public key.
func PublisherIDOf(pub ed25519.PublicKey) PublisherID {
	sum := sha256.Sum256(pub)
	var id PublisherID
	copy(id[:], sum[:16])
	return id
}

// String returns the URL-safe base64 form used in keys and output.
func (p PublisherID) String() string { return base64.RawURLEncoding.EncodeToString(p[:]) }
