// Package clustertest holds the tests of auditd on a real three-node NATS
// JetStream cluster: real nats-server and auditd processes, started by
// internal/clusterenv from the repo's cluster configuration (cluster/*.conf).
// It has no code of its own; make test-cluster runs it, and testing.Short
// skips it.
package clustertest
