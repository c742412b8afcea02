package bittorrent

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// PEM block types of namespace key files.
const (
	pemPrivate = "PRIVATE KEY" // PKCS #8
	pemPublic  = "PUBLIC KEY"  // PKIX
)

// ErrKeyFile matches every error reading or writing a namespace key file.
var ErrKeyFile = errors.New("bittorrent: namespace key file")

// LoadKeyFile reads a namespace key file: a PEM "PRIVATE KEY" (PKCS #8
// Ed25519; the holder can write the namespace) or "PUBLIC KEY" (PKIX
// Ed25519; read-only). Exactly one of the results is set, except that a
// private key also gives its public key.
func LoadKeyFile(path string) (ed25519.PrivateKey, ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, nil, fmt.Errorf("%w: %s: no PEM block", ErrKeyFile, path)
	}
	switch block.Type {
	case pemPrivate:
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %w", ErrKeyFile, path, err)
		}
		priv, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, nil, fmt.Errorf("%w: %s: not an Ed25519 key", ErrKeyFile, path)
		}
		return priv, priv.Public().(ed25519.PublicKey), nil
	case pemPublic:
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %w", ErrKeyFile, path, err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, nil, fmt.Errorf("%w: %s: not an Ed25519 key", ErrKeyFile, path)
		}
		return nil, pub, nil
	default:
		return nil, nil, fmt.Errorf("%w: %s: PEM block %q (want %q or %q)", ErrKeyFile, path, block.Type, pemPrivate, pemPublic)
	}
}

// WriteKeyFile writes key as a PEM PKCS #8 file with mode 0600, refusing
// to overwrite an existing file.
func WriteKeyFile(path string, key ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	if err := pem.Encode(f, &pem.Block{Type: pemPrivate, Bytes: der}); err != nil {
		_ = f.Close()
		return fmt.Errorf("%w: %s: %w", ErrKeyFile, path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrKeyFile, path, err)
	}
	return nil
}

// WritePublicKeyFile writes pub as a PEM PKIX file (for read-only
// handles), refusing to overwrite an existing file.
func WritePublicKeyFile(path string, pub ed25519.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: pemPublic, Bytes: der})
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("%w: %s: %w", ErrKeyFile, path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrKeyFile, path, err)
	}
	return nil
}
