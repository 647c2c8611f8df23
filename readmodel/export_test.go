package readmodel

// MigrateTo lets tests stop the migrations at a version, to test upgrades
// from it.
var MigrateTo = migrateTo
