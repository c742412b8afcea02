package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/stickypub/stickypub/core"
)

// jsonPolicy is a topic's write-access policy as topic show --json prints it.
type jsonPolicy struct {
	Topic   string   `json:"topic"`
	Open    bool     `json:"open"` // no policy: anyone may publish
	Owner   string   `json:"owner,omitempty"`
	Version uint64   `json:"version,omitempty"`
	Allowed []string `json:"allowed"`
}

func newTopicCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Manage who may publish on a topic",
		Long: `A topic may carry a write-access policy signed by its owner (the identity
that created it): subscribers deliver only the listed publishers' messages
(others are counted as denied), and publishers not listed are refused before
they write. PUBLISHER is a publisher ID as "stickypub identity" prints it.`,
	}
	cmd.AddCommand(newTopicCreateCmd(a), newTopicChangeCmd(a, true), newTopicChangeCmd(a, false), newTopicShowCmd(a))
	return cmd
}

func newTopicCreateCmd(a *app) *cobra.Command {
	var allow []string
	var self bool
	cmd := &cobra.Command{
		Use:   "create TOPIC --allow PUBLISHER...",
		Short: "Give a topic a policy owned by this identity",
		Example: `  stickypub topic create --self --allow 3kTd… sensors
  stickypub topic show sensors`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			ids, err := parseIDs(allow)
			if err != nil {
				return err
			}
			return a.withSession(cmd, false, func(ctx context.Context, s *session) error {
				if self {
					ids = append(ids, s.client.Identity().ID())
				}
				if err := s.client.CreateTopic(ctx, args[0], ids...); err != nil {
					return err
				}
				p, err := s.client.TopicPolicy(ctx, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "created the policy of %s: %d publishers allowed\n", args[0], len(p.Allowed))
				return nil
			})
		},
	}
	cmd.Flags().StringSliceVar(&allow, "allow", nil, "publisher IDs allowed to publish (repeat or comma-separate)")
	cmd.Flags().BoolVar(&self, "self", false, "allow this identity too")
	return cmd
}

func newTopicChangeCmd(a *app, allow bool) *cobra.Command {
	use, short := "allow TOPIC PUBLISHER...", "Allow publishers on a topic (owner only)"
	if !allow {
		use, short = "deny TOPIC PUBLISHER...", "Withdraw publishers' right to publish on a topic (owner only)"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + ".\n\nFlags go before TOPIC: everything after it is a publisher ID, so an ID that\n" +
			"starts with '-' (one in 64 does) is read as an ID, not as a flag.",
		Args: usageArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			ids, err := parseIDs(args[1:])
			if err != nil {
				return err
			}
			return a.withSession(cmd, false, func(ctx context.Context, s *session) error {
				change := s.client.Allow
				if !allow {
					change = s.client.Deny
				}
				if err := change(ctx, args[0], ids...); err != nil {
					return err
				}
				p, err := s.client.TopicPolicy(ctx, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "policy of %s version %d: %d publishers allowed\n", args[0], p.Version, len(p.Allowed))
				return nil
			})
		},
	}
	// Publisher IDs are base64url: some start with '-'.
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func newTopicShowCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show TOPIC",
		Short: "Show a topic's policy",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			return a.withSession(cmd, true, func(ctx context.Context, s *session) error {
				p, err := s.client.TopicPolicy(ctx, args[0])
				if err != nil {
					return err
				}
				return a.printPolicy(args[0], p, asJSON)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

// printPolicy prints topic's policy p (nil: none).
func (a *app) printPolicy(topic string, p *core.Policy, asJSON bool) error {
	j := jsonPolicy{Topic: topic, Open: p == nil, Allowed: []string{}}
	if p != nil {
		j.Owner, j.Version = core.PublisherIDOf(p.Owner).String(), p.Version
		for _, id := range p.Allowed {
			j.Allowed = append(j.Allowed, id.String())
		}
	}
	if asJSON {
		return writeJSON(a.stdout, j)
	}
	if j.Open {
		fmt.Fprintf(a.stdout, "%s: no policy, anyone may publish\n", topic)
		return nil
	}
	fmt.Fprintf(a.stdout, "%s: policy version %d, owner %s\n", topic, j.Version, j.Owner)
	for _, id := range j.Allowed {
		fmt.Fprintf(a.stdout, "  allowed %s\n", id)
	}
	return nil
}

// parseIDs parses publisher IDs given on the command line.
func parseIDs(args []string) ([]core.PublisherID, error) {
	ids := make([]core.PublisherID, 0, len(args))
	for _, s := range args {
		id, err := core.ParsePublisherID(s)
		if err != nil {
			return nil, &usageError{err}
		}
		ids = append(ids, id)
	}
	return ids, nil
}
