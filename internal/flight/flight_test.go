package flight_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scriphq/scrip/internal/flight"
)

// TestDoSharesARead checks that callers asking for a key while its read is
// under way get that read's answer, and that a caller after it reads again.
func TestDoSharesARead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g flight.Group[int]
		var reads atomic.Int32
		release := make(chan struct{})
		read := func(context.Context) (int, error) {
			if reads.Add(1) == 1 {
				<-release
			}
			return 7, nil
		}
		const callers = 8
		var wg sync.WaitGroup
		got := make([]int, callers)
		for i := range callers {
			wg.Go(func() {
				v, err := g.Do(t.Context(), "k", read)
				if err != nil {
					t.Error(err)
				}
				got[i] = v
			})
		}
		synctest.Wait() // every caller waits, on the first read or for it
		close(release)
		wg.Wait()
		if n := reads.Load(); n != 1 {
			t.Fatalf("%d callers at once made %d reads, want 1", callers, n)
		}
		for i, v := range got {
			if v != 7 {
				t.Fatalf("caller %d got %d, want 7", i, v)
			}
		}
		if v, err := g.Do(t.Context(), "k", read); err != nil || v != 7 || reads.Load() != 2 {
			t.Fatalf("a later caller got %d, %v after %d reads; want 7, nil after 2", v, err, reads.Load())
		}
	})
}

// TestDoKeysAreApart checks that reads of different keys do not wait for
// each other.
func TestDoKeysAreApart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g flight.Group[string]
		release := make(chan struct{})
		go g.Do(t.Context(), "a", func(context.Context) (string, error) { <-release; return "a", nil })
		synctest.Wait()
		if v, err := g.Do(t.Context(), "b", func(context.Context) (string, error) { return "b", nil }); err != nil || v != "b" {
			t.Fatalf("key b got %q, %v while a was being read; want b, nil", v, err)
		}
		close(release)
	})
}

// TestDoCallerGivesUp checks that a caller stops waiting when its context
// ends, and that the read it started goes on for the callers still waiting.
func TestDoCallerGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g flight.Group[int]
		var reads atomic.Int32
		release := make(chan struct{})
		var readErr error
		read := func(ctx context.Context) (int, error) {
			reads.Add(1)
			<-release
			readErr = ctx.Err()
			return 1, nil
		}
		first, cancel := context.WithCancel(t.Context())
		firstDone := make(chan error, 1)
		go func() {
			_, err := g.Do(first, "k", read)
			firstDone <- err
		}()
		synctest.Wait()
		second := make(chan int, 1)
		go func() {
			v, err := g.Do(t.Context(), "k", read)
			if err != nil {
				t.Error(err)
			}
			second <- v
		}()
		synctest.Wait()
		cancel()
		if err := <-firstDone; !errors.Is(err, context.Canceled) {
			t.Fatalf("the caller that gave up got %v, want context.Canceled", err)
		}
		close(release)
		if v := <-second; v != 1 {
			t.Fatalf("the caller still waiting got %d, want 1", v)
		}
		if n := reads.Load(); n != 1 {
			t.Fatalf("%d reads, want 1", n)
		}
		if readErr != nil {
			t.Fatalf("the read saw its context end (%v) when its first caller gave up", readErr)
		}
	})
}

// TestDoTimeout checks that a shared read stops at the Group's Timeout.
func TestDoTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := flight.Group[int]{Timeout: 10 * time.Second}
		start := time.Now()
		_, err := g.Do(t.Context(), "k", func(ctx context.Context) (int, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d != 10*time.Second {
			t.Fatalf("the read stopped after %v, want 10s", d)
		}
	})
}

// TestDoPanic checks that a read that panics fails its callers with an
// error instead of crashing the process.
func TestDoPanic(t *testing.T) {
	var g flight.Group[int]
	_, err := g.Do(t.Context(), "secret", func(context.Context) (int, error) { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("got %v, want an error naming the panic", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("the error names the key: %v", err)
	}
}
