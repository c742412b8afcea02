package main

import (
	"encoding/base64"
	"fmt"

	"github.com/spf13/cobra"
)

// jsonIdentity is the identity as identity --json prints it.
type jsonIdentity struct {
	Path      string `json:"path"`
	Publisher string `json:"publisher"`
	PublicKey string `json:"public_key"`
}

func newIdentityCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "Show this user's identity (creating it if missing)",
		Long: `Show the identity file and the publisher ID it gives, creating a new
identity first if the file does not exist.

The identity is an Ed25519 key (a PEM file, mode 0600) that signs every
message published and every subscription record written. Its publisher ID is
what subscribers and "stickypub info" show. Keep one identity per publishing
process: two processes publishing to the same topic with the same identity at
the same time are refused, as their sequence numbers would collide.

The file is --identity, else $STICKYPUB_IDENTITY, else stickypub/identity.pem
in the user's configuration directory.`,
		Example: `  stickypub identity
  stickypub --identity ./bot.pem identity     # a second identity, e.g. for a bot
  stickypub identity --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, path, err := a.loadIdentity()
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, jsonIdentity{Path: path, Publisher: id.ID().String(),
					PublicKey: base64.StdEncoding.EncodeToString(id.PublicKey())})
			}
			_, err = fmt.Fprintf(a.stdout, "identity:  %s\npublisher: %s\n", path, id.ID())
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}
