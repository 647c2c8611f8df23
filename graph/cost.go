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
		List: defaultListItems,
	}
}
