package gateway

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests (every
// test closes its gateway, server and transport).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
