package redistest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ServerBinary is the executable StartLocal and StartCluster run from PATH.
const ServerBinary = "redis-server"

// startTimeout bounds how long a private server may take to answer PING.
const startTimeout = 15 * time.Second

// LocalOptions configures a private redis-server.
type LocalOptions struct {
	// AOF turns the append-only file on, so that data survives Kill and Start.
	// Without it the server keeps nothing on disk (--save "" --appendonly no).
	AOF bool
	// Fsync is the appendfsync policy when AOF is on: "always", "everysec"
	// (the default) or "no".
	Fsync string
	// Password sets requirepass.
	Password string
	// TLS makes the server speak TLS only, with a certificate for 127.0.0.1
	// signed by a fresh CA; Local.TLS and Local.CAFile describe it.
	TLS bool
	// Args are extra redis-server arguments, such as "--maxmemory", "8mb".
	Args []string

	cluster bool // cluster-enabled yes (set by StartCluster)
}

// Local is a private redis-server process listening on 127.0.0.1. It keeps
// its port and data directory across Kill and Start.
type Local struct {
	// Addr is host:port of the server.
	Addr string
	// Port is the TCP (or TLS) port.
	Port int
	// Dir is the server's working directory (AOF, logs, certificates).
	Dir string
	// Opts are the options it was started with.
	Opts LocalOptions
	// TLS is a client configuration trusting the server, nil without TLS.
	TLS *tls.Config
	// CAFile is the PEM file of the CA that signed the server certificate.
	CAFile string

	tb     testing.TB
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartLocal starts a private redis-server on a free port in a temporary
// directory and stops it when tb ends. Without redis-server on PATH it skips
// tb (fails it when STICKYPUB_REQUIRE_REDIS=1).
func StartLocal(tb testing.TB, opts LocalOptions) *Local {
	tb.Helper()
	if _, err := exec.LookPath(ServerBinary); err != nil {
		unavailable(tb, "%s is not on PATH: %v", ServerBinary, err)
	}
	l := &Local{Dir: tb.TempDir(), Opts: opts, tb: tb}
	if opts.TLS {
		cfg, caFile, err := writeTestCerts(l.Dir)
		if err != nil {
			tb.Fatalf("redistest: certificates: %v", err)
		}
		l.TLS, l.CAFile = cfg, caFile
	}
	tb.Cleanup(l.Kill)
	var lastErr error
	for range 5 { // a free port can be taken between the probe and the bind
		port, err := freePort(opts.cluster)
		if err != nil {
			tb.Fatalf("redistest: %v", err)
		}
		l.Port, l.Addr = port, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = l.start(); lastErr == nil {
			return l
		}
	}
	tb.Fatalf("redistest: starting %s: %v", ServerBinary, lastErr)
	return nil
}

// Server describes l as a Server (Private, Source "local").
func (l *Local) Server() *Server {
	return &Server{Addrs: []string{l.Addr}, Password: l.Opts.Password, TLS: l.TLS,
		Source: "local", Private: true, Local: l}
}

// Start starts the server again after Kill or Stop, on the same port and
// directory, and waits until it answers. It fails tb when it cannot.
func (l *Local) Start() {
	l.tb.Helper()
	if err := l.start(); err != nil {
		l.tb.Fatalf("redistest: restarting %s on %s: %v", ServerBinary, l.Addr, err)
	}
}

// Kill stops the server with SIGKILL (no shutdown save) and waits for the
// process to exit. It does nothing when the server is not running.
func (l *Local) Kill() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cmd == nil {
		return
	}
	_ = l.cmd.Process.Kill()
	<-l.exited
	l.cmd = nil
}

// Restart kills the server and starts it again.
func (l *Local) Restart() {
	l.tb.Helper()
	l.Kill()
	l.Start()
}

// Running reports whether the process is alive.
func (l *Local) Running() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cmd == nil {
		return false
	}
	select {
	case <-l.exited:
		return false
	default:
		return true
	}
}

// LogTail returns the last lines of the server's log.
func (l *Local) LogTail() string {
	b, _ := os.ReadFile(filepath.Join(l.Dir, "redis.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// args builds the redis-server command line.
func (l *Local) args() []string {
	o := l.Opts
	a := []string{
		"--bind", "127.0.0.1",
		"--dir", l.Dir,
		"--logfile", filepath.Join(l.Dir, "redis.log"),
		"--daemonize", "no",
		"--protected-mode", "no",
		"--save", "",
	}
	if o.TLS {
		a = append(a, "--port", "0", "--tls-port", strconv.Itoa(l.Port),
			"--tls-cert-file", filepath.Join(l.Dir, "server.crt"),
			"--tls-key-file", filepath.Join(l.Dir, "server.key"),
			"--tls-ca-cert-file", l.CAFile,
			"--tls-auth-clients", "no")
		if o.cluster {
			a = append(a, "--tls-cluster", "yes")
		}
	} else {
		a = append(a, "--port", strconv.Itoa(l.Port))
	}
	if o.AOF {
		fsync := o.Fsync
		if fsync == "" {
			fsync = "everysec"
		}
		a = append(a, "--appendonly", "yes", "--appendfsync", fsync)
	} else {
		a = append(a, "--appendonly", "no")
	}
	if o.Password != "" {
		a = append(a, "--requirepass", o.Password)
		if o.cluster {
			a = append(a, "--masterauth", o.Password)
		}
	}
	if o.cluster {
		a = append(a, "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(l.Dir, "nodes.conf"),
			"--cluster-node-timeout", "5000")
	}
	return append(a, o.Args...)
}

// start runs the process and waits until it answers PING.
func (l *Local) start() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cmd != nil {
		return errors.New("already running")
	}
	cmd := exec.Command(ServerBinary, l.args()...)
	cmd.Dir = l.Dir
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	l.cmd, l.exited = cmd, exited

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			l.cmd = nil
			return fmt.Errorf("%s exited at startup: %s", ServerBinary, l.LogTail())
		default:
		}
		if err := l.probe(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			l.cmd = nil
			return fmt.Errorf("no answer on %s after %s (%v): %s", l.Addr, startTimeout, err, l.LogTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// probe sends an inline PING. Any reply but LOADING means the server is
// accepting commands (NOAUTH included).
func (l *Local) probe() error {
	d := &net.Dialer{Timeout: 500 * time.Millisecond}
	var c net.Conn
	var err error
	if l.TLS != nil {
		c, err = tls.DialWithDialer(d, "tcp", l.Addr, l.TLS)
	} else {
		c, err = d.Dial("tcp", l.Addr)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.HasPrefix(line, "-LOADING") {
		return errors.New(strings.TrimSpace(line))
	}
	return nil
}

// freePort finds a port that is free on 127.0.0.1; for a cluster node the
// bus port (port+10000) must be free too.
func freePort(cluster bool) (int, error) {
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if !cluster {
			return port, nil
		}
		if port+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		if err != nil {
			continue
		}
		_ = bus.Close()
		return port, nil
	}
	return 0, errors.New("no free port pair for a cluster node")
}
