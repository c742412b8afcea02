package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/stickypub/stickypub/core"
)

// jsonInfo is a topic's description as info --json prints it.
type jsonInfo struct {
	Topic            string               `json:"topic"`
	Version          uint64               `json:"version"`
	Announcements    uint64               `json:"announcements"`
	RetainedFrom     uint64               `json:"retained_from"`
	Messages         uint64               `json:"messages"`
	RetainedMessages uint64               `json:"retained_messages"`
	Expired          uint64               `json:"expired"`
	Unreadable       uint64               `json:"unreadable"`
	Publishers       []jsonPublisherInfo  `json:"publishers"`
	Subscribers      []jsonSubscriberInfo `json:"subscribers"`
}

type jsonPublisherInfo struct {
	ID      string `json:"id"`
	LastSeq uint64 `json:"last_seq"`
}

type jsonSubscriberInfo struct {
	ID      string    `json:"id"`
	Expires time.Time `json:"expires"`
}

func newInfoCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info TOPIC",
		Short: "Show a topic's publishers, subscribers and history",
		Long: `Show what the store records about TOPIC: the version of its coordinator
record, how many announcements were made and from which one on they are
retained, every publisher with its last sequence number, the live subscribers
with the expiry of their subscription records, and how many messages were
published and how many a subscriber joining now (--from-start) would receive:
retained messages whose TTL has passed ("expired") and messages of segments
that are missing or damaged in the store ("unreadable") are not counted as
retained (info reads the retained segments to tell). A topic nobody published
or subscribed to shows version 0.`,
		Example: `  stickypub info demo
  stickypub info --json demo | jq .publishers`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			return a.withSession(cmd, true, func(ctx context.Context, s *session) error {
				info, err := s.client.Info(ctx, args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.stdout, newJSONInfo(info))
				}
				return a.printInfo(info)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func newJSONInfo(info core.TopicInfo) jsonInfo {
	j := jsonInfo{Topic: info.Topic, Version: uint64(info.Version), Announcements: info.Announcements,
		RetainedFrom: info.RetainedFrom, Messages: info.Messages, RetainedMessages: info.RetainedMessages,
		Expired: info.Expired, Unreadable: info.Unreadable,
		Publishers: []jsonPublisherInfo{}, Subscribers: []jsonSubscriberInfo{}}
	for _, p := range info.Publishers {
		j.Publishers = append(j.Publishers, jsonPublisherInfo{ID: p.ID.String(), LastSeq: p.LastSeq})
	}
	for _, s := range info.Subscribers {
		j.Subscribers = append(j.Subscribers, jsonSubscriberInfo{ID: s.ID.String(), Expires: s.Expires})
	}
	return j
}

func (a *app) printInfo(info core.TopicInfo) error {
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "topic:\t%s\n", displayTopic(info.Topic))
	fmt.Fprintf(w, "version:\t%d\n", info.Version)
	fmt.Fprintf(w, "announcements:\t%d (retained from #%d)\n", info.Announcements, info.RetainedFrom)
	fmt.Fprintf(w, "messages:\t%d (%d retained", info.Messages, info.RetainedMessages)
	if info.Expired > 0 {
		fmt.Fprintf(w, ", %d expired", info.Expired)
	}
	if info.Unreadable > 0 {
		fmt.Fprintf(w, `, %d unreadable: see "stickypub doctor"`, info.Unreadable)
	}
	fmt.Fprintf(w, ")\n")
	fmt.Fprintf(w, "publishers:\t%d\n", len(info.Publishers))
	for _, p := range info.Publishers {
		fmt.Fprintf(w, "  %s\tlast seq %d\n", p.ID, p.LastSeq)
	}
	fmt.Fprintf(w, "subscribers:\t%d\n", len(info.Subscribers))
	now := time.Now()
	for _, s := range info.Subscribers {
		fmt.Fprintf(w, "  %s\texpires %s (in %s)\n", s.ID, s.Expires.Local().Format(plainTime),
			s.Expires.Sub(now).Round(time.Second))
	}
	return w.Flush()
}
