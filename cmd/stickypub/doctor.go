package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"

	"github.com/spf13/cobra"
	"github.com/stickypub/stickypub/backend/bolt"
	"github.com/stickypub/stickypub/core"
)

// errDamaged: doctor found damage (its report is on stdout).
var errDamaged = errors.New("the store is damaged (see the report above)")

func newDoctorCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check a bolt store file for damage and report what is readable",
		Long: `Check the bolt file named by --store without changing it, and report:

  file        its path and size
  open        whether stickypub can open it (a truncated file cannot)
  structure   bbolt's own consistency check of pages and free list (skipped
              when pages are missing: reading them would crash)
  records     how many records were read, and every one that is damaged: a
              message segment or other blob that no longer matches its digest,
              a coordinator that does not decode
  readable    whether every record could be reached

Subscribers skip what is damaged and report the messages of a damaged segment
as a gap; a truncated file cannot be used at all. Exit status 0 means healthy,
1 damaged (or not checkable). Run it while no stickypub process uses the file
(it waits for them as long as the URI's timeout parameter says, 1s by default).`,
		Example: `  stickypub doctor
  stickypub doctor --store bolt:///var/lib/app/topics.db`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := a.oneShot(cmd)
			defer cancel()
			u, err := url.Parse(a.store)
			if err != nil || u.Scheme != bolt.Scheme {
				return fmt.Errorf("doctor checks bolt files only; --store is %s", core.QuoteInput(a.store))
			}
			f, err := bolt.ResolveURI(u)
			if err != nil {
				return err
			}
			r, err := bolt.Check(ctx, f.Path, f.LockTimeout, core.CheckStoredRecord)
			if err != nil {
				return a.explain(cmd, err)
			}
			if err := a.printCheck(r); err != nil {
				return err
			}
			if !r.Healthy() {
				return errDamaged
			}
			return nil
		},
	}
}

func (a *app) printCheck(r *bolt.CheckReport) error {
	w := &bytes.Buffer{}
	verdict := "healthy"
	if !r.Healthy() {
		verdict = "DAMAGED"
	}
	fmt.Fprintf(w, "file:       %s (%d bytes)\n", r.Path, r.Size)
	fmt.Fprintf(w, "verdict:    %s\n", verdict)
	var de *bolt.DamageError
	switch {
	case errors.As(r.Damage, &de):
		fmt.Fprintf(w, "open:       fails: %s\n", de.Problem)
	case r.Damage != nil:
		fmt.Fprintf(w, "open:       fails: %v\n", r.Damage)
	default:
		fmt.Fprintf(w, "open:       ok\n")
	}
	switch {
	case !r.StructureChecked:
		fmt.Fprintf(w, "structure:  not checked (pages are missing)\n")
	case len(r.Structure) == 0:
		fmt.Fprintf(w, "structure:  ok (bbolt consistency check)\n")
	default:
		fmt.Fprintf(w, "structure:  %d problem(s) found by bbolt's consistency check:\n", len(r.Structure))
		for _, p := range r.Structure {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	if r.BadCount == 0 {
		fmt.Fprintf(w, "records:    %d read, none damaged\n", r.Records)
	} else {
		fmt.Fprintf(w, "records:    %d read, %d damaged:\n", r.Records, r.BadCount)
		for _, b := range r.BadRecords {
			fmt.Fprintf(w, "  %s\n", b)
		}
		if r.BadCount > len(r.BadRecords) {
			fmt.Fprintf(w, "  ... and %d more\n", r.BadCount-len(r.BadRecords))
		}
	}
	if r.Incomplete == "" {
		fmt.Fprintf(w, "readable:   every record was reached\n")
	} else {
		fmt.Fprintf(w, "readable:   only the records counted above: %s\n", r.Incomplete)
	}
	switch {
	case r.Damage != nil:
		fmt.Fprintf(w, "advice:     stickypub cannot use this file: restore it from a backup, or move it aside (mv %s %s.damaged) to start an empty store\n", r.Path, r.Path)
	case !r.Healthy():
		fmt.Fprintf(w, "advice:     the file still works: subscribers skip what is damaged and report the messages of a damaged segment as a gap\n")
	}
	_, err := a.stdout.Write(w.Bytes())
	return err
}
