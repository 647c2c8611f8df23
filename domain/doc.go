// Package domain holds the audit log's model and rules: the event envelope, the
// catalog of event types and their payload schemas, validation, the settings
// aggregate, filters, principals and the errors callers must tell apart.
//
// It performs no I/O and imports no infrastructure; every other package depends
// on it, never the other way round.
package domain
