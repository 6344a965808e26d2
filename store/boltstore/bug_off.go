//go:build !erasured_bug_reply_before_commit

package boltstore

// bugReplyBeforeCommit is true only in a deliberately broken build (build tag
// erasured_bug_reply_before_commit) that answers Update before its commit is durable. It exists
// to prove that the crash harness catches that bug; see cmd/erasured/crash_pipeline_test.go.
const bugReplyBeforeCommit = false
