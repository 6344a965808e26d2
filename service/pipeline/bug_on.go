//go:build erasured_bug_no_reconcile

package pipeline

// bugNoReconcile: see bug_off.go. THIS BUILD CAN CREATE A LIVEPERSON DELETION REQUEST TWICE.
const bugNoReconcile = true
