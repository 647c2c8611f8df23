//go:build !linux

package clusterenv

import "os/exec"

// dieWithParent does nothing where there is no parent-death signal; t.Cleanup
// still kills every child.
func dieWithParent(*exec.Cmd) {}
