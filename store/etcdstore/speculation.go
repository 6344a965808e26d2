package etcdstore

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Speculative reads.
//
// A point read that misses the group's overlay and the committer's cache would cost a round trip
// to etcd: either in the function's run, or in the prefetch's one request after a dry run of
// every function of the group. Most such reads in a busy store look for keys that do not exist
// yet (a Submit checks that its request id and subject are new, then writes them). So the
// committer first runs a group speculatively: such a read finds nothing, with no request and no
// dry run, and its key is recorded. The group's transaction then compares every recorded key as
// absent (Version == 0) beside meta/seq, and its Else branch reads them. If one exists after all,
// nothing is written; the Else branch's values (read at the base's meta/seq, so valid for the
// cache) go into the cache, and the group runs again on them, in the same way as after a
// conflict. So a function never commits on a read that was not true at its commit, and
// serializability is what it was: the compares on meta/seq and on the assumed keys together
// prove that everything the group read still holds.
//
// A wrong guess costs a transaction that writes nothing, so after one the committer goes back
// to the prefetch for a number of groups that doubles with each wrong guess in a row (up to
// specBackoffMax) and halves with each right one. A group assumes at most what its transaction's
// compares and Else reads can hold; reads past that go to etcd as without speculation.

// specBackoffMax is the most groups run with the prefetch after wrong guesses in a row.
const specBackoffMax = 256

// specReserve is what a transaction's compares and Else reads hold beside the assumed keys:
// meta/seq, the commit key (chained), the counters and the commit key read back, the terms.
const specReserve = 8

// assume records key as read absent by a speculative run; false when the group does not
// speculate or holds as many assumptions as its transaction can compare.
func (g *group) assume(key string) bool {
	if !g.speculate {
		return false
	}
	if g.isAssumed[key] {
		return true
	}
	if len(g.assumed)+specReserve >= g.db.maxOps {
		return false
	}
	if g.isAssumed == nil {
		g.isAssumed = make(map[string]bool)
	}
	g.isAssumed[key] = true
	g.assumed = append(g.assumed, key)
	return true
}

// unassume drops the assumptions made since there were n, those of a function that goes to
// another transaction.
func (g *group) unassume(n int) {
	for _, k := range g.assumed[n:] {
		delete(g.isAssumed, k)
	}
	clear(g.assumed[n:])
	g.assumed = g.assumed[:n]
}

// assumedCmps are the compares of the keys the group assumed absent, and assumedReads their
// reads for the Else branch.
func (g *group) assumedCmps() []clientv3.Cmp {
	cmps := make([]clientv3.Cmp, len(g.assumed))
	for i, k := range g.assumed {
		cmps[i] = clientv3.Compare(clientv3.Version(k), "=", 0)
	}
	return cmps
}

func (g *group) assumedReads() []clientv3.Op {
	ops := make([]clientv3.Op, len(g.assumed))
	for i, k := range g.assumed {
		ops[i] = clientv3.OpGet(k)
	}
	return ops
}

// checkAssumed caches what the Else branch read of the assumed keys (rs, in their order; the
// base's meta/seq, so valid for the cache) and reports whether one of them exists.
func (db *DB) checkAssumed(assumed []string, rs []*pb.ResponseOp) (wrong bool) {
	for i, k := range assumed {
		if i >= len(rs) {
			break
		}
		kvs := rs[i].GetResponseRange().Kvs
		if len(kvs) == 1 {
			v := kvs[0].Value
			if v == nil {
				v = []byte{}
			}
			db.cache.put(k, v, true)
			wrong = true
		} else {
			db.cache.put(k, nil, false)
		}
	}
	return wrong
}

// speculating reports whether the next group runs speculatively, counting down the groups
// that run with the prefetch after a wrong guess.
func (db *DB) speculating() bool {
	if db.opts.NoPrefetch || db.noSpeculation {
		return false
	}
	if db.specSkip > 0 {
		db.specSkip--
		return false
	}
	return true
}

// guessed records the outcome of a speculative group's assumptions.
func (db *DB) guessed(right bool) {
	if right {
		db.specBackoff /= 2
		return
	}
	db.misguesses.Add(1)
	db.specBackoff = min(max(1, 2*db.specBackoff), specBackoffMax)
	db.specSkip = db.specBackoff
}
