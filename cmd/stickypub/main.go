// Command stickypub publishes to and subscribes to sticky pub/sub topics:
// topics whose messages persist, so that a subscriber that joins late still
// receives the retained history, then what is new. Messages are signed by
// their publisher (an Ed25519 identity kept in a file) and carry a
// per-publisher sequence number, so gaps are detected.
//
// Usage:
//
//	stickypub publish TOPIC MESSAGE...     publish messages (or lines of stdin)
//	stickypub publish TOPIC - | --file F   publish all of stdin, or a file, as one message
//	stickypub subscribe TOPIC              follow a topic and print its messages
//	stickypub info TOPIC                   show a topic's publishers, subscribers, history
//	stickypub identity [new]               show (or create) this user's identity
//	stickypub doctor                       check a bolt file for damage
//
// The store is chosen with --store (or STICKYPUB_STORE): a URI such as
// bolt:stickypub.db (the default, a file in the working directory),
// redis://127.0.0.1:6379/0 or mem: (in-process, gone when the command exits).
// Several stickypub processes can use one bolt file at the same time: the
// first one keeps it open and serves the others on a Unix socket next to it
// (FILE.sock), so a subscriber sees another process's publish at once.
//
// Run "stickypub help COMMAND" for the flags and examples of each command.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitInterrupted = 130
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code. Errors are
// printed as one line on stderr; usage errors add the command's usage.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, a second one kills the process at once (as if
	// the shutdown, bounded anyway, hangs).
	context.AfterFunc(ctx, stop)
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(a)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "stickypub: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "\n%s", cmd.UsageString())
		return exitUsage
	case errors.Is(err, errInterrupted):
		return exitInterrupted
	}
	return exitError
}
