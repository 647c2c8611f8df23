//go:build !linux

package testenv

import "os/exec"

// dieWithParent does nothing where there is no parent-death signal; t.Cleanup
// still kills every child.
func dieWithParent(*exec.Cmd) {}
