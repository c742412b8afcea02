package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/core"

	// The adapters register their URI schemes with backend.Open.
	_ "github.com/stickypub/stickypub/backend/bolt"
	_ "github.com/stickypub/stickypub/backend/libp2p"
	_ "github.com/stickypub/stickypub/backend/memory"
	_ "github.com/stickypub/stickypub/backend/redis"
)

// Environment variables that set the defaults of the global flags.
const (
	envStore    = "STICKYPUB_STORE"
	envIdentity = "STICKYPUB_IDENTITY"
	envOrdering = "STICKYPUB_ORDERING"
)

// defaultStore is the store used without --store and STICKYPUB_STORE.
const defaultStore = "bolt:stickypub.db"

// closeTimeout bounds the shutdown of a client (flushing publishes,
// removing subscription records) after the command's work is done.
const closeTimeout = 5 * time.Second

// app holds the global flags and the process's standard streams.
type app struct {
	store    string
	identity string
	timeout  time.Duration
	verbose  bool
	ordering string // --ordering: "", "topic" or "publisher"

	stdin          io.Reader
	stdout, stderr io.Writer
	logger         *slog.Logger
	wrapStore      func(backend.Store) backend.Store // instruments the store (metrics), if set

	loaded *core.Identity // the identity, once loaded
	// readOnlyOK lets openSession open a bolt file read-only when this user
	// may not write it (for commands that only read).
	readOnlyOK bool
}

// usageError is a command line the command cannot run: main prints the
// command's usage after it and exits with status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// errInterrupted: a one-shot command was stopped by SIGINT or SIGTERM.
var errInterrupted = errors.New("interrupted")

// usageArgs makes the errors of an argument validator usage errors.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return &usageError{err}
		}
		return nil
	}
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "stickypub",
		Short: "Sticky publish/subscribe: topics whose messages persist",
		Long: `stickypub publishes to and subscribes to sticky pub/sub topics: topics whose
messages persist, so that a subscriber that joins late still receives the
retained history, then what is new. Every message is signed by its publisher
(an Ed25519 identity kept in a file, see "stickypub identity") and carries a
per-publisher sequence number, so a subscriber verifies who wrote it and
detects any gap.

The store is a URI (--store, or the STICKYPUB_STORE environment variable):

  bolt:stickypub.db            a bbolt file (the default: stickypub.db in the
                               working directory); bolt:///abs/path.db for an
                               absolute path; ?timeout=2s to wait longer for
                               the file
  redis://127.0.0.1:6379/0     Redis (rediss:// for TLS, redis+cluster://
                               host1:port,host2:port for Redis Cluster)
  bep44://?bootstrap=HOST:PORT,...&key=FILE
                               BEP44 items on a BitTorrent DHT (see
                               "stickypub swarm --backend bittorrent")
  mem:                         in this process's memory only (gone when the
                               command exits; for trying things out)

Several stickypub processes can use one bolt file at the same time: the first
one keeps the file open and serves the others on a Unix socket next to it
(FILE.sock), so a subscriber prints another process's publish at once.`,
		Example: `  # Terminal 1: follow a topic, history first
  stickypub subscribe --from-start demo

  # Terminal 2: publish to it
  stickypub publish demo hello "second message"
  printf 'one\ntwo\n' | stickypub publish demo      # one message per line

  # What the store knows about the topic
  stickypub info demo

  # Use Redis instead of the local file
  STICKYPUB_STORE=redis://127.0.0.1:6379/0 stickypub subscribe demo`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				msg := fmt.Sprintf("unknown command %s for %q", core.QuoteInput(args[0]), cmd.CommandPath())
				if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
					msg += "; did you mean " + strings.Join(s, " or ") + "?"
				}
				return usagef("%s", msg)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			a.logger = a.newLogger(slog.LevelWarn)
			if a.timeout <= 0 {
				return usagef("--timeout must be positive, got %v", a.timeout)
			}
			return nil
		},
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })

	store := os.Getenv(envStore)
	if store == "" {
		store = defaultStore
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.store, "store", store, "store URI (env "+envStore+")")
	pf.StringVar(&a.identity, "identity", os.Getenv(envIdentity),
		"identity file (env "+envIdentity+`; default "`+displayIdentityPath()+`", created on first use; another path is created only if its directory exists)`)
	pf.DurationVar(&a.timeout, "timeout", 30*time.Second,
		"time limit of a one-shot command (publish: of each batch) and of the setup of subscribe")
	pf.BoolVarP(&a.verbose, "verbose", "v", false, "log what the tool does on stderr")
	pf.StringVar(&a.ordering, "ordering", os.Getenv(envOrdering),
		"topic ordering: topic (one order of all messages) or publisher (each publisher's in order, no contention between publishers); "+
			"default: topic on bolt and Redis, publisher on the DHTs; a topic keeps the ordering it was created with (env "+envOrdering+")")

	root.AddCommand(newPublishCmd(a), newSubscribeCmd(a), newInfoCmd(a), newIdentityCmd(a), newDoctorCmd(a))
	root.AddCommand(newServeCmd(a), newBenchCmd(a), newSwarmCmd(a), newTopicCmd(a), newSweepCmd(a))
	return root
}

// newLogger is a logger on stderr at level (debug with --verbose).
func (a *app) newLogger(level slog.Level) *slog.Logger {
	if a.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level,
		ReplaceAttr: func(groups []string, attr slog.Attr) slog.Attr {
			if len(groups) == 0 && attr.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return attr
		}}))
}

// displayIdentityPath is the default identity path as shown in the help.
func displayIdentityPath() string {
	p, err := defaultIdentityPath()
	if err != nil {
		return "$XDG_CONFIG_HOME/stickypub/identity.pem"
	}
	return p
}

// defaultIdentityPath is os.UserConfigDir()/stickypub/identity.pem.
func defaultIdentityPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no identity file given (--identity or %s) and %w", envIdentity, err)
	}
	return filepath.Join(dir, "stickypub", "identity.pem"), nil
}

// identityPath is the identity file to use; explicit is true when the
// user named it (--identity or the environment) rather than the default.
func (a *app) identityPath() (path string, explicit bool, err error) {
	if a.identity != "" {
		return a.identity, true, nil
	}
	path, err = defaultIdentityPath()
	return path, false, err
}

// loadIdentity loads the identity. A missing file is created (and said so
// on stderr) at the default path, or at a path the user named when its
// directory exists: a mistyped --identity fails instead of silently
// starting a new identity (and its directories).
func (a *app) loadIdentity() (*core.Identity, string, error) {
	path, explicit, err := a.identityPath()
	if err != nil {
		return nil, "", err
	}
	if a.loaded != nil {
		return a.loaded, path, nil
	}
	id, err := core.LoadIdentity(path)
	switch {
	case err == nil:
		a.checkIdentityMode(path)
		a.loaded = id
		return id, path, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, "", err
	}
	if explicit {
		if dir := filepath.Dir(path); !isDir(dir) {
			return nil, "", fmt.Errorf("identity file %s does not exist, nor does its directory %s (a typo in --identity or %s?); to start a new identity there, run: stickypub --identity %s identity new",
				core.QuoteInput(path), core.QuoteInput(dir), envIdentity, core.QuoteInput(path))
		}
	}
	return a.createIdentity(path)
}

// createIdentity creates the identity file at path (and its directory),
// or loads it if another process just did.
func (a *app) createIdentity(path string) (*core.Identity, string, error) {
	id, created, err := core.LoadOrCreateIdentity(path)
	if err != nil {
		return nil, "", err
	}
	a.loaded = id
	if created {
		fmt.Fprintf(a.stderr, "stickypub: created a new identity in %s (publisher %s)\n", path, id.ID())
	} else {
		a.checkIdentityMode(path)
	}
	return id, path, nil
}

// checkIdentityMode warns, like ssh, when others may read the identity
// file: whoever reads it can publish as its owner.
func (a *app) checkIdentityMode(path string) {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return
	}
	fmt.Fprintf(a.stderr, "stickypub: warning: identity file %s is accessible by others (mode %04o): anyone who can read it can publish as you; run: chmod 600 %s\n",
		path, fi.Mode().Perm(), path)
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// session is an open store and a client on it.
type session struct {
	a      *app
	client *core.Client
	close  func() error
	// readOnly: the store was opened read-only (see app.readOnlyOK).
	readOnly bool
}

// orderingOption is the client option of --ordering.
func (a *app) orderingOption() (core.Option, error) {
	o, err := core.ParseOrdering(a.ordering)
	if err != nil {
		return nil, &usageError{fmt.Errorf("--ordering: %w", err)}
	}
	return core.WithOrdering(o), nil
}

// openSession opens the store and a client with the identity, within ctx.
func (a *app) openSession(ctx context.Context, opts ...core.Option) (*session, error) {
	id, _, err := a.loadIdentity()
	if err != nil {
		return nil, err
	}
	st, readOnly, err := openStore(ctx, a.store, a.logger, a.readOnlyOK)
	if err != nil {
		return nil, err
	}
	order, err := a.orderingOption()
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	opts = append([]core.Option{core.WithLogger(a.logger), order}, opts...)
	cst := st
	if a.wrapStore != nil {
		cst = a.wrapStore(st)
	}
	client, err := core.New(cst, id, opts...)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	s := &session{a: a, client: client, readOnly: readOnly}
	s.close = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		return alsoErr(client.Close(ctx), st.Close())
	}
	return s, nil
}

// oneShot returns the context of a one-shot command: the command's context
// (cancelled by SIGINT and SIGTERM) bounded by --timeout.
func (a *app) oneShot(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), a.timeout)
}

// withSession runs fn with a one-shot context and a session on the store
// (read-only allowed when readOnly; the client made with opts), closes
// the session, and explains context errors: the body of most one-shot
// commands.
func (a *app) withSession(cmd *cobra.Command, readOnly bool, fn func(ctx context.Context, s *session) error, opts ...core.Option) (err error) {
	ctx, cancel := a.oneShot(cmd)
	defer cancel()
	a.readOnlyOK = readOnly
	s, err := a.openSession(ctx, opts...)
	if err != nil {
		return a.explain(cmd, err)
	}
	defer func() { err = alsoErr(err, s.close()) }()
	return a.explain(cmd, fn(ctx, s))
}

// explain turns the context errors of a one-shot command into messages
// that say what happened.
func (a *app) explain(cmd *cobra.Command, err error) error {
	switch {
	case err == nil:
		return nil
	case cmd.Context().Err() != nil:
		return errInterrupted
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("timed out after %v (--timeout): %w", a.timeout, err)
	}
	return err
}

// alsoErr adds a second failure (typically from closing) to err on the
// same line, so that the command still reports one line.
func alsoErr(err, more error) error {
	switch {
	case more == nil:
		return err
	case err == nil:
		return more
	}
	return fmt.Errorf("%w (also: %v)", err, more)
}
