//go:build erasured_bug_reply_before_commit

package boltstore

// bugReplyBeforeCommit: see bug_off.go. THIS BUILD LOSES ACKNOWLEDGED WRITES ON A CRASH.
const bugReplyBeforeCommit = true
