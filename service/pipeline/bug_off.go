//go:build !erasured_bug_no_reconcile

package pipeline

// bugNoReconcile is true only in a deliberately broken build (build tag
// erasured_bug_no_reconcile) that resends a batch whose earlier send may have reached LivePerson
// without first looking for it there. It exists to prove that the crash harness catches that
// bug; see cmd/erasured/crash_pipeline_test.go.
const bugNoReconcile = false
