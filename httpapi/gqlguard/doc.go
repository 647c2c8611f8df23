// Package gqlguard guards auditd's GraphQL endpoint, as gqlgen extensions
// and HTTP middleware: Apollo's persisted queries over a shared key-value
// store (PersistedQueries), the cost limits every query is measured against
// before gqlgen parses it (QueryLimits, CostLimit, ResponseLimit), and the
// shaping of answers to requests that never execute as GraphQL over HTTP
// prescribes (RequestErrors, WriteRequestError). httpapi wires them.
package gqlguard
