// Package faults holds the fault and abuse suite: backends that misbehave,
// clients that attack, and a soak under churn. Every case runs the whole
// gateway (app.App) on loopback and ends by checking that it still serves a
// normal request and that no goroutine or file descriptor leaked.
//
// `make test-faults` runs it in full; `make test` runs it with -short.
package faults
