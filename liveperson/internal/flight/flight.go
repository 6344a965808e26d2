// Package flight runs one call per key at a time and shares its result with
// everyone who asked meanwhile, so a token refresh or a discovery lookup is
// never done twice concurrently for the same account.
package flight

import (
	"context"
	"sync"
)

// Group deduplicates concurrent calls by key. The zero value is ready to use.
type Group[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]*call[V]
}

type call[V any] struct {
	done chan struct{}
	v    V
	err  error
}

// Do runs fn for key unless a call for key is already in flight, in which case
// it waits for that call's result. The first caller runs fn in its own
// goroutine; fn receives a context that is not cancelled with that caller's, so
// one impatient caller cannot fail everyone else's wait: fn must bound itself.
// A waiter whose ctx ends stops waiting and gets ctx.Err().
func (g *Group[K, V]) Do(ctx context.Context, key K, fn func(context.Context) (V, error)) (V, error) {
	g.mu.Lock()
	if g.m == nil {
		g.m = make(map[K]*call[V])
	}
	if c, ok := g.m[key]; ok {
		g.mu.Unlock()
		select {
		case <-c.done:
			return c.v, c.err
		case <-ctx.Done():
			var zero V
			return zero, ctx.Err()
		}
	}
	c := &call[V]{done: make(chan struct{})}
	g.m[key] = c
	g.mu.Unlock()

	c.v, c.err = fn(context.WithoutCancel(ctx))
	g.mu.Lock()
	delete(g.m, key)
	g.mu.Unlock()
	close(c.done)
	return c.v, c.err
}
