package main

// stickypub sweep: delete segments orphaned by crashed publishers.

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/stickypub/stickypub/core"
)

// jsonSweep is what sweep --json prints.
type jsonSweep struct {
	Topics    []string `json:"topics"`
	Blobs     int      `json:"blobs"`
	Segments  int      `json:"segments"`
	Reachable int      `json:"reachable"`
	Deleted   int      `json:"deleted"`
	Kept      int      `json:"kept"`
}

func newSweepCmd(a *app) *cobra.Command {
	var (
		asJSON bool
		grace  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "sweep TOPIC...",
		Short: "Delete segments that crashed publishers left behind",
		Long: `Delete the segments of the topics that no publisher's head record reaches:
written by a publisher that crashed before pointing its head at them. A
segment whose seqs the publisher has since published again is deleted at
once; one beyond its publisher's head only once its messages are older than
--grace (a younger one may be a publish in flight). It reads every blob of
the store, so run it as maintenance, not in a loop. Needs a store that can
list and delete keys (bolt without share=1, redis, mem).`,
		Example: `  stickypub sweep demo
  stickypub sweep --grace 24h --json demo other`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			if grace < 0 {
				return usagef("--grace must not be negative")
			}
			return a.withSession(cmd, false, func(ctx context.Context, s *session) error {
				rep, err := s.client.SweepOrphans(ctx, args...)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.stdout, jsonSweep{Topics: args, Blobs: rep.Blobs, Segments: rep.Segments,
						Reachable: rep.Reachable, Deleted: rep.Deleted, Kept: rep.Kept})
				}
				fmt.Fprintf(a.stdout, "%d blobs read, %d segments of the topics: %d reachable, %d orphans deleted, %d kept (younger than %v)\n",
					rep.Blobs, rep.Segments, rep.Reachable, rep.Deleted, rep.Kept, grace)
				return nil
			}, core.WithOrphanGrace(grace))
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	cmd.Flags().DurationVar(&grace, "grace", core.DefaultOrphanGrace, "keep segments beyond their publisher's head until their messages are this old")
	return cmd
}
