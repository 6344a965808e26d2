// Package etcdstore is the store backend over etcd, for several replicas of erasured sharing one
// store: the buckets its user declares, an event log with revisions that are the same on every
// replica, group-committed transactions that are serializable across processes, compaction,
// watchers that resume from a revision on any replica, leader election with fencing, and backups.
// It implements the contract of package store (and store.Elector) and passes the same conformance
// suite as boltstore, plus the suites of a shared store (storetest.RunShared, RunElector).
//
// # Layout
//
// Every key lies under Options.Prefix (which ends in "/"):
//
//	meta/format          the layout's version (keyFormat), 8 bytes big-endian; a newer one is refused
//	meta/seq             write transactions committed so far; every write transaction compares and bumps it
//	meta/rev             the last event revision appended
//	meta/oldest          the oldest event revision still stored (1 until compacted)
//	meta/commit/<id>     one per open DB: the nonce of its last write, to settle a lost reply
//	                     (deleted by Close; see below for a process that crashed)
//	b/<bucket>/<key>     the buckets' keys (arbitrary bytes; etcd orders keys bytewise, as bbolt does)
//	ev/<16 hex digits>   the event of that revision: uvarint(len(key)) key value
//	leader/<lease id>    the election's candidates (concurrency.Election)
//
// A prefix with keys but no meta/format does not open: it is an unfinished Restore, or another
// program's keys.
//
// # Transactions
//
// Update functions run on one committer goroutine per DB, over an overlay of their writes on top
// of the store's state at one etcd revision (reads go to etcd at that revision, with a cache of
// point reads that the committer keeps while nothing else writes). The functions queued together
// (up to MaxBatch, and as many as fit in MaxTxnOps operations and MaxTxnBytes) commit as ONE etcd
// transaction whose If compares meta/seq with the value read. If another process (a replica)
// committed meanwhile, nothing is written and the functions run again on the new state, which the
// contract allows: so two replicas taking the same request id at once cannot both insert it.
// Before a group runs, its functions run once each in a dry run whose reads that miss the cache
// find nothing and are recorded; the recorded keys are then read in one etcd request, so that a
// group of Submits, each checking its request id, costs one read round trip instead of one each. A
// function that fails is undone from the overlay alone; the others commit. A reply lost to a
// timeout is settled before anything else: the committer bumps meta/seq if it still has the old
// value (after which the lost transaction can never apply) and reads its commit key to learn
// whether it had. etcd answers ErrNoSpace (its space quota exceeded) to some transactions it has
// applied, so that answer too is settled, by one read of the commit key. A group that writes
// nothing (functions that only read, or that failed) is checked by a read-only transaction
// comparing meta/seq (and its terms), so that it decides on the store as it is, not on what this
// process last heard of it, without voiding the other processes' caches.
//
// A process that crashes leaves its meta/commit/<id> key behind: a few bytes, never read by
// another process. Delete those of processes known to be gone (etcdctl del) when they pile up; not
// a running process's, which needs its key to settle a lost reply.
//
// # Revisions and watch
//
// The store's revisions are its own: meta/rev and the ev/ keys are written in the transaction that
// appends, so every replica sees the same revision for the same event, whatever etcd's revision
// is. Each DB follows the other processes' commits with one etcd watch on the ev/, leader/ and
// meta/ keys (not the buckets), so that Rev, Oldest and watchers move on promptly; its own
// commits reach its watchers before Update returns. Watchers replay from a ring of recent events
// or from the ev/ keys, then follow live, with no gap and no duplicate at the switch (as in
// boltstore: one hub, no etcd watch per watcher). etcd's own compaction of its history never
// loses an event: the ev/ keys are live keys, and a follower whose etcd watch was compacted reads
// them again. Compact deletes ev/ keys below a revision (range deletes of up to 10,000 events per
// transaction) and sets meta/oldest; asking for a deleted revision returns *store.CompactedError.
//
// # Leadership and fencing
//
// Campaign grants a lease of LeaseTTL and runs a concurrency.Election over it. The DB renews the
// lease itself every third of the TTL and records when each renewal was sent; ValidUntil is that
// time plus the TTL, less a margin. etcd measures the lease from when it received the renewal, so
// no other process can be elected before ValidUntil, even if this one is paused or cut off. The
// term ends (Done) when a renewal is refused, when ValidUntil passes unrenewed, when the election
// key is deleted, on Resign and on Close; ending it revokes the lease (at once on Resign and Close,
// after its last ValidUntil when it ended by itself). An Update fenced with a term
// adds a compare of the election key's CreateRevision to its transaction, so a deposed leader's
// writes fail with store.ErrNotLeader however late they arrive; fenced and unfenced functions
// share a transaction, and a failed fence compare fails only the functions of that term.
//
// # Guarantees and etcd settings
//
// The etcd server must be v3.5.23 or later in 3.5, v3.6.5 or later in 3.6, or 3.7: earlier
// releases may revoke a lease that is being renewed, when a stalled old etcd leader revokes it
// (etcd-io/etcd#15247), or answer a renewal of a revoked lease as a success (etcd-io/etcd#20590),
// and ValidUntil rests on neither happening.
//
// Update returns nil once etcd has committed the transaction (a quorum has it in its log, fsynced
// unless etcd runs with --unsafe-no-fsync) and Rev covers its appends; when this process cannot
// read other processes' events before them, it returns an error though the writes committed. Err
// is nil while a linearizable read answers within HealthTimeout, so it reports a cluster without
// quorum as well as an unreachable one, and while no commit's outcome has been unknown for as long. What
// matters in etcd's configuration:
//
//   - --max-txn-ops (default 128): the operations of one transaction, so the size of a group
//     commit; a Submit writes a few keys and an event. Raise it (1024 is reasonable) and set
//     Options.MaxTxnOps to match; the DB lowers its own limit if etcd refuses a transaction.
//     One update function that needs more operations than the limit fails (errTooLarge).
//   - --max-request-bytes (default 1.5 MiB): Options.MaxTxnBytes (default 1 MiB) must stay below.
//   - --auto-compaction-*: etcd's history compaction is harmless to the store (it never reads far
//     back); some compaction is needed, or etcd's database grows with every revision.
//   - --quota-backend-bytes: the store's data, its event log until Compact, and etcd's history.
//
// Reads inside an Update go to etcd unless cached: a function that scans much is slower than on
// bbolt. Backups are dumps of the prefix at one etcd revision in a documented format (see
// Backup), restored with Restore into an empty prefix.
package etcdstore
