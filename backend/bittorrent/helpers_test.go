package bittorrent_test

import (
	"log/slog"
	"os"
)

// quietLogger drops the adapter's warnings unless BEP44_LOG is set.
func quietLogger() *slog.Logger {
	if os.Getenv("BEP44_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
