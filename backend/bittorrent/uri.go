package bittorrent

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// Scheme is the URI scheme this package registers with backend.Register.
const Scheme = "bep44"

func init() { backend.Register(Scheme, openURI) }

// openURI is the backend.OpenFunc of Scheme.
func openURI(ctx context.Context, u *url.URL) (backend.Store, error) {
	o, err := ParseURI(u)
	if err != nil {
		return nil, err
	}
	s, err := Open(ctx, o)
	if err != nil {
		return nil, err // a nil *Store must not become a non-nil interface
	}
	return s, nil
}

// ParseURI turns a store URI into Options. Errors match backend.ErrBadURI.
//
//	bep44://?bootstrap=127.0.0.1:6881,127.0.0.1:6882&key=PATH
//
// Parameters: bootstrap (required, comma-separated host:port of storing
// nodes), key (a namespace key file, see LoadKeyFile) or pubkey (the
// namespace public key in hex: a read-only handle), listen (default
// 127.0.0.1:0), prefix (salt prefix), replicas, write_quorum, read_quorum,
// query_timeout, lifetime, republish, republish_window, view_ttl
// (durations such as 2s).
func ParseURI(u *url.URL) (Options, error) {
	var o Options
	bad := func(format string, args ...any) (Options, error) {
		return Options{}, fmt.Errorf("%w: %s: %s", backend.ErrBadURI, u.Redacted(), fmt.Sprintf(format, args...))
	}
	if u.Scheme != Scheme {
		return bad("scheme %q is not %q", u.Scheme, Scheme)
	}
	if u.Opaque != "" || u.Host != "" || (u.Path != "" && u.Path != "/") || u.User != nil {
		return bad("want %s://?bootstrap=host:port,...&key=PATH (everything in the query)", Scheme)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("%v", err)
	}
	var keyPath, pubHex string
	for name, vals := range q {
		if len(vals) != 1 {
			return bad("parameter %q given %d times", name, len(vals))
		}
		val := vals[0]
		switch name {
		case "bootstrap":
			for _, hp := range strings.Split(val, ",") {
				if hp = strings.TrimSpace(hp); hp != "" {
					o.Bootstrap = append(o.Bootstrap, hp)
				}
			}
		case "key":
			keyPath = val
		case "pubkey":
			pubHex = val
		case "listen":
			o.Listen = val
		case "prefix":
			o.SaltPrefix = []byte(val)
		case "replicas", "write_quorum", "read_quorum":
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 {
				return bad("parameter %q=%q is not a positive integer", name, val)
			}
			switch name {
			case "replicas":
				o.Replicas = n
			case "write_quorum":
				o.WriteQuorum = n
			default:
				o.ReadQuorum = n
			}
		case "query_timeout", "lifetime", "republish", "republish_window", "view_ttl":
			d, err := time.ParseDuration(val)
			if err != nil || d <= 0 {
				return bad("parameter %q=%q is not a positive duration", name, val)
			}
			switch name {
			case "query_timeout":
				o.QueryTimeout = d
			case "lifetime":
				o.RecordLifetime = d
			case "republish":
				o.RepublishInterval = d
			case "republish_window":
				o.RepublishWindow = d
			default:
				o.ViewTTL = d
			}
		default:
			return bad("unknown parameter %q", name)
		}
	}
	if len(o.Bootstrap) == 0 {
		return bad("bootstrap is required (the public BitTorrent routers are never used)")
	}
	switch {
	case keyPath != "" && pubHex != "":
		return bad("give key or pubkey, not both")
	case keyPath != "":
		priv, pub, err := LoadKeyFile(keyPath)
		if err != nil {
			return bad("%v", err)
		}
		o.PrivateKey, o.PublicKey = priv, pub
	case pubHex != "":
		b, err := hex.DecodeString(pubHex)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return bad("pubkey must be %d bytes of hex", ed25519.PublicKeySize)
		}
		o.PublicKey = b
	default:
		return bad("a namespace key is required: key=PATH or pubkey=HEX")
	}
	if _, err := o.withDefaults(); err != nil {
		return bad("%v", err)
	}
	return o, nil
}

// URI returns a store URI for a namespace: bootstrap nodes and a key file
// path.
func URI(bootstrap []string, keyPath string) string {
	esc := strings.NewReplacer("%", "%25", "&", "%26", "#", "%23", "+", "%2B", " ", "%20", ";", "%3B")
	return Scheme + "://?bootstrap=" + strings.Join(bootstrap, ",") + "&key=" + esc.Replace(keyPath)
}
