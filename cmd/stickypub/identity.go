package main

import (
	"encoding/base64"
	"fmt"
	"os"

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
		Short: "Show this user's identity (creating the default one if missing)",
		Long: `Show the identity file and the publisher ID it gives. A missing identity is
created (and said so on stderr) at the default path, or at a path given with
--identity when its directory exists; "stickypub identity new" creates one
anywhere. A warning is printed when others may read the identity file.

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
	cmd.AddCommand(newIdentityNewCmd(a))
	return cmd
}

func newIdentityNewCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "new",
		Short: "Create a new identity file (and its directory)",
		Long: `Create a new identity at the identity path (--identity, else
$STICKYPUB_IDENTITY, else the default), creating its directory too. An
existing identity file is never replaced.`,
		Example: `  stickypub --identity ./keys/bot.pem identity new`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, _, err := a.identityPath()
			if err != nil {
				return err
			}
			if _, err := os.Lstat(path); err == nil {
				return fmt.Errorf("identity file %s already exists; it is not replaced", path)
			}
			id, _, err := a.createIdentity(path)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "identity:  %s\npublisher: %s\n", path, id.ID())
			return err
		},
	}
}
