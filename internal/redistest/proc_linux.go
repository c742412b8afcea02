//go:build linux

package redistest

import "syscall"

// procAttr makes the child die with the test binary, so a crashed test never
// leaves a redis-server behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
