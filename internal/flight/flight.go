// Package flight makes the callers that ask for the same thing at the same
// time share one read of it.
//
// A cache entry that expires under load is missed by every request in
// flight at that moment: with 64 clients on one API key, 64 reads of the
// key store at once, each taking a connection from the pool (and opening
// new ones) ahead of the batches that wait for a connection too. With a
// Group, the first caller reads and the others wait for its answer.
package flight

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"golang.org/x/sync/singleflight"
)

// Group shares reads by key. The zero Group is ready to use.
type Group[V any] struct {
	// Timeout bounds a shared read, which no caller can cancel; zero: no
	// bound.
	Timeout time.Duration
	g       singleflight.Group
}

// Do returns what read returns for key. A caller that asks for a key while
// a read of it is under way waits for that read instead of starting
// another; once it has returned, the next caller starts a new one. The
// read does not stop when the caller that started it gives up, so that
// its end does not fail the others, but it stops at the Group's Timeout;
// each caller stops waiting when its own ctx is done. A read that panics
// is an error for every caller, as net/http turns a handler's panic into
// one failed request, not a crashed process.
func (g *Group[V]) Do(ctx context.Context, key string, read func(context.Context) (V, error)) (V, error) {
	ch := g.g.DoChan(key, func() (v any, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("shared read panicked: %v\n%s", p, debug.Stack()) // not the key: it may be a secret
			}
		}()
		rctx := context.WithoutCancel(ctx)
		if g.Timeout > 0 {
			var cancel context.CancelFunc
			rctx, cancel = context.WithTimeout(rctx, g.Timeout)
			defer cancel()
		}
		return read(rctx)
	})
	select {
	case r := <-ch:
		v, _ := r.Val.(V)
		return v, r.Err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}
