package libp2p

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// Scheme is the URI scheme registered with backend.Register.
const Scheme = "libp2p"

func init() { backend.Register(Scheme, openURI) }

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

// ParseURI turns a store URI into Options. The URI has no host or path,
// only query parameters (see the package documentation); bootstrap,
// listen and allow_dial may repeat (or hold comma-separated lists).
// Errors match backend.ErrBadURI.
func ParseURI(u *url.URL) (Options, error) {
	var o Options
	bad := func(format string, args ...any) (Options, error) {
		return Options{}, fmt.Errorf("%w: %s: %s", backend.ErrBadURI, u.Redacted(), fmt.Sprintf(format, args...))
	}
	if u.Scheme != Scheme {
		return bad("scheme %q is not %s", u.Scheme, Scheme)
	}
	if u.Opaque != "" || u.Host != "" || (u.Path != "" && u.Path != "/") || u.User != nil {
		return bad("want %s://?network=NAME&bootstrap=MULTIADDR (no host or path)", Scheme)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("%v", err)
	}
	list := func(vals []string) []string {
		var out []string
		for _, v := range vals {
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					out = append(out, s)
				}
			}
		}
		return out
	}
	for name, vals := range q {
		switch name {
		case "bootstrap":
			o.Bootstrap = append(o.Bootstrap, list(vals)...)
			continue
		case "listen":
			o.Listen = append(o.Listen, list(vals)...)
			continue
		case "allow_dial":
			for _, s := range list(vals) {
				p, err := netip.ParsePrefix(s)
				if err != nil {
					return bad("allow_dial: %v", err)
				}
				o.AllowDial = append(o.AllowDial, p)
			}
			continue
		}
		if len(vals) != 1 {
			return bad("parameter %q given %d times", name, len(vals))
		}
		v := vals[0]
		var err error
		switch name {
		case "network":
			o.Network = v
		case "prefix":
			o.Prefix = v
		case "key_file":
			o.KeyFile = v
		case "lookup":
			o.Lookup = Lookup(v)
		case "replicas":
			o.Replicas, err = positive(v)
		case "write_quorum":
			o.WriteQuorum, err = positive(v)
		case "read_quorum":
			o.ReadQuorum, err = positive(v)
		case "agree":
			o.Agree, err = positive(v)
		case "max_key_size":
			o.MaxKeySize, err = positive(v)
		case "max_value_size":
			o.MaxValueSize, err = positive(v)
		case "max_tracked":
			o.MaxTracked, err = positive(v)
		case "record_lifetime":
			o.RecordLifetime, err = duration(v)
		case "refresh":
			o.RefreshInterval, err = time.ParseDuration(v)
		case "keep_for":
			o.KeepFor, err = duration(v)
		case "rpc_timeout":
			o.RPCTimeout, err = duration(v)
		case "read_grace":
			o.ReadGrace, err = duration(v)
		case "hint_window":
			o.HintWindow, err = time.ParseDuration(v)
		case "watch_poll":
			o.WatchPoll, err = time.ParseDuration(v)
		case "connect_timeout":
			o.ConnectTimeout, err = duration(v)
		default:
			return bad("unknown parameter %q", name)
		}
		if err != nil {
			return bad("%s: %v", name, err)
		}
	}
	if _, err := o.withDefaults(); err != nil {
		return bad("%v", err)
	}
	return o, nil
}

func positive(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err == nil && n <= 0 {
		err = fmt.Errorf("%d is not positive", n)
	}
	return n, err
}

func duration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err == nil && d <= 0 {
		err = fmt.Errorf("%v is not positive", d)
	}
	return d, err
}

// URI returns the store URI of these options (the inverse of ParseURI for
// the fields a URI carries; Logger is not one).
func (o Options) URI() string {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	num := func(k string, n int) {
		if n != 0 {
			q.Set(k, strconv.Itoa(n))
		}
	}
	dur := func(k string, d time.Duration) {
		if d != 0 {
			q.Set(k, d.String())
		}
	}
	set("network", o.Network)
	for _, b := range o.Bootstrap {
		q.Add("bootstrap", b)
	}
	for _, l := range o.Listen {
		q.Add("listen", l)
	}
	for _, p := range o.AllowDial {
		q.Add("allow_dial", p.String())
	}
	set("prefix", o.Prefix)
	set("key_file", o.KeyFile)
	set("lookup", string(o.Lookup))
	num("replicas", o.Replicas)
	num("write_quorum", o.WriteQuorum)
	num("read_quorum", o.ReadQuorum)
	num("agree", o.Agree)
	num("max_key_size", o.MaxKeySize)
	num("max_value_size", o.MaxValueSize)
	num("max_tracked", o.MaxTracked)
	dur("record_lifetime", o.RecordLifetime)
	dur("refresh", o.RefreshInterval)
	dur("keep_for", o.KeepFor)
	dur("rpc_timeout", o.RPCTimeout)
	dur("read_grace", o.ReadGrace)
	dur("hint_window", o.HintWindow)
	dur("watch_poll", o.WatchPoll)
	dur("connect_timeout", o.ConnectTimeout)
	return Scheme + "://?" + q.Encode()
}

// parseURIString parses a URI string into Options.
func parseURIString(uri string) (Options, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return Options{}, fmt.Errorf("%w: %v", backend.ErrBadURI, err)
	}
	return ParseURI(u)
}
