package main

import "github.com/spf13/cobra"

func newBenchCmd(a *app) *cobra.Command {
	return &cobra.Command{Use: "bench", Short: "Measure publish throughput (not built yet)", Hidden: true}
}
