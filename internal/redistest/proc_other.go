//go:build !linux

package redistest

import "syscall"

// procAttr returns nil: only Linux can tie the child's life to the parent.
func procAttr() *syscall.SysProcAttr { return nil }
