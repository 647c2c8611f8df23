package graph

import (
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/ingest"
	"github.com/auditlog/auditlog/querycost"
)

// defaultListItems weighs a list field this package knows no bound for.
const defaultListItems = 10

// CostWeights says how many items each list of the schema holds at most, so
// that the cost of a query grows with the data it asks for: aliasing the
// catalog a thousand times costs a thousand catalogs. Paged fields are
// sized by their first argument, as their complexity functions are.
func CostWeights() querycost.Weights {
	catalog := domain.Catalog()
	fields := 1
	for _, t := range catalog {
		fields = max(fields, len(t.Fields))
	}
	return querycost.Weights{
		PageArgument: "first",
		Lists: map[string]int{
			"Query.auditEventTypes":            len(catalog),
			"AuditEventTypeInfo.fields":        fields,
			"AuditEventConnection.edges":       1,               // the page is counted at the connection
			"RecordAuditEventsPayload.results": ingest.MaxBatch, // one per input event
		},
		List:   defaultListItems,
		Fields: integrityWeights(),
	}
}

// integrityFields are the fields whose one call costs far more than its
// answer: verifyAuditLog reads the organization's whole stream, and the
// others read the tree and may sign and publish a checkpoint. weight is
// added to the call's cost; perRequest bounds the calls of one request.
var integrityFields = map[string]struct{ weight, perRequest int }{
	"Query.verifyAuditLog":           {weight: 2_000, perRequest: 1},
	"Query.auditLogCheckpoint":       {weight: 100, perRequest: 1},
	"Query.auditEventProof":          {weight: 100, perRequest: 2},
	"Query.auditLogConsistencyProof": {weight: 100, perRequest: 2},
}

func integrityWeights() map[string]int {
	out := make(map[string]int, len(integrityFields))
	for k, v := range integrityFields {
		out[k] = v.weight
	}
	return out
}

// IntegrityCalls bounds how often one request may call each integrity
// field, keyed "Query.field": aliasing verifyAuditLog four times must not
// hold four database connections for the length of four stream walks.
func IntegrityCalls() map[string]int {
	out := make(map[string]int, len(integrityFields))
	for k, v := range integrityFields {
		out[k] = v.perRequest
	}
	return out
}

// integrityWeight is the weight of one call of the integrity field name
// of Query, for gqlgen's complexity, the second check.
func integrityWeight(name string) int { return integrityFields["Query."+name].weight }
