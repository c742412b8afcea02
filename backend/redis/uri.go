package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// URI schemes registered with backend.Register.
const (
	// Scheme is a single server over TCP.
	Scheme = "redis"
	// SchemeTLS is a single server over TLS.
	SchemeTLS = "rediss"
	// SchemeCluster is a Redis Cluster over TCP.
	SchemeCluster = "redis+cluster"
	// SchemeClusterTLS is a Redis Cluster over TLS.
	SchemeClusterTLS = "rediss+cluster"
)

func init() {
	for _, scheme := range []string{Scheme, SchemeTLS, SchemeCluster, SchemeClusterTLS} {
		backend.Register(scheme, openURI)
	}
}

// openURI is the backend.OpenFunc of every scheme.
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

// ParseURI turns a store URI (see the package documentation) into Options.
// Errors match backend.ErrBadURI.
func ParseURI(u *url.URL) (Options, error) {
	var o Options
	bad := func(format string, args ...any) (Options, error) {
		return Options{}, fmt.Errorf("%w: %s: %s", backend.ErrBadURI, u.Redacted(), fmt.Sprintf(format, args...))
	}
	useTLS := false
	switch u.Scheme {
	case Scheme:
	case SchemeTLS:
		useTLS = true
	case SchemeCluster:
		o.Cluster = true
	case SchemeClusterTLS:
		o.Cluster, useTLS = true, true
	default:
		return bad("scheme %q is not one of %s, %s, %s, %s", u.Scheme, Scheme, SchemeTLS, SchemeCluster, SchemeClusterTLS)
	}
	if u.Opaque != "" {
		return bad("want %s://host:port", u.Scheme)
	}
	if u.User != nil {
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
	}
	hosts := u.Host
	if hosts != "" {
		for _, h := range strings.Split(hosts, ",") {
			addr, err := hostPort(h)
			if err != nil {
				return bad("%v", err)
			}
			o.Addrs = append(o.Addrs, addr)
		}
	}
	switch path := strings.Trim(u.Path, "/"); {
	case path == "":
	case o.Cluster:
		return bad("a cluster URI takes no database path")
	default:
		db, err := strconv.Atoi(path)
		if err != nil || db < 0 {
			return bad("database %q is not a number", path)
		}
		o.DB = db
	}
	if u.Fragment != "" {
		return bad("unexpected fragment")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("query: %v", err)
	}
	var tlsCA, tlsName string
	var tlsInsecure bool
	for name, vals := range q {
		if name != "addr" && len(vals) != 1 {
			return bad("parameter %q given %d times", name, len(vals))
		}
		v := vals[0]
		var err error
		switch name {
		case "prefix":
			if v == "" {
				return bad("empty prefix")
			}
			o.Prefix = v
		case "addr":
			if !o.Cluster {
				return bad("addr= is only for %s URIs", SchemeCluster)
			}
			for _, h := range vals {
				addr, err := hostPort(h)
				if err != nil {
					return bad("%v", err)
				}
				o.Addrs = append(o.Addrs, addr)
			}
		case "dial_timeout":
			o.DialTimeout, err = positiveDuration(v)
		case "read_timeout":
			o.ReadTimeout, err = positiveDuration(v)
		case "write_timeout":
			o.WriteTimeout, err = positiveDuration(v)
		case "pool_size":
			o.PoolSize, err = positiveInt(v)
		case "max_retries":
			o.MaxRetries, err = strconv.Atoi(v)
			if err == nil && o.MaxRetries < -1 {
				err = fmt.Errorf("want -1 or more")
			}
		case "pipelines":
			o.Pipelines, err = strconv.Atoi(v)
			if err == nil && (o.Pipelines < -1 || o.Pipelines == 0 || o.Pipelines > MaxPipelines) {
				err = fmt.Errorf("want -1 (off) or 1..%d", MaxPipelines)
			}
		case "max_key_size":
			o.MaxKeySize, err = positiveInt(v)
		case "max_value_size":
			o.MaxValueSize, err = positiveInt(v)
		case "ca":
			tlsCA = v
		case "server_name":
			tlsName = v
		case "insecure_skip_verify":
			tlsInsecure, err = strconv.ParseBool(v)
		default:
			return bad("unknown parameter %q", name)
		}
		if err != nil {
			return bad("parameter %s=%q: %v", name, v, err)
		}
	}
	if !useTLS && (tlsCA != "" || tlsName != "" || tlsInsecure) {
		return bad("TLS parameters need the %s or %s scheme", SchemeTLS, SchemeClusterTLS)
	}
	if useTLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: tlsName, InsecureSkipVerify: tlsInsecure}
		if tlsCA != "" {
			pem, err := os.ReadFile(tlsCA)
			if err != nil {
				return bad("ca: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return bad("ca: no PEM certificate in %s", tlsCA)
			}
			cfg.RootCAs = pool
		}
		o.TLS = cfg
	}
	if len(o.Addrs) == 0 {
		return bad("no host")
	}
	if _, err := o.withDefaults(); err != nil {
		return bad("%v", err)
	}
	return o, nil
}

// hostPort validates host:port, adding the default port 6379 when absent.
func hostPort(h string) (string, error) {
	if h == "" {
		return "", fmt.Errorf("empty host")
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			host, port = strings.Trim(h, "[]"), "6379"
		} else {
			return "", fmt.Errorf("address %q: %v", h, err)
		}
	}
	if host == "" {
		return "", fmt.Errorf("address %q has no host", h)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", fmt.Errorf("address %q: bad port", h)
	}
	return net.JoinHostPort(host, port), nil
}

func positiveDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err == nil && d <= 0 {
		err = fmt.Errorf("want a positive duration")
	}
	return d, err
}

func positiveInt(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err == nil && n <= 0 {
		err = fmt.Errorf("want a positive number")
	}
	return n, err
}
