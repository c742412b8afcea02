//go:build !unix

package main

import "os"

// tryLock: no advisory locks here; publishers are not serialized.
func tryLock(*os.File) (bool, error) { return false, errLocksUnsupported }
