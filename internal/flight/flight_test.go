package flight_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scriphq/scrip/internal/flight"
)

// TestDoSharesARead checks that callers asking for a key while its read is
// under way get that read's answer, and that a caller after it reads again.
func TestDoSharesARead(t *testing.T) {
	var g flight.Group[int]
	var reads atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	read := func(context.Context) (int, error) {
		if reads.Add(1) == 1 {
			close(started)
			<-release
		}
		return 7, nil
	}
	const callers = 8
	var wg sync.WaitGroup
	got := make([]int, callers)
	wg.Go(func() {
		v, err := g.Do(t.Context(), "k", read)
		if err != nil {
			t.Error(err)
		}
		got[0] = v
	})
	<-started
	var ready sync.WaitGroup
	ready.Add(callers - 1)
	for i := 1; i < callers; i++ {
		wg.Go(func() {
			ready.Done()
			v, err := g.Do(t.Context(), "k", read)
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		})
	}
	// The others are about to ask; give them time to join the read.
	ready.Wait()
	time.Sleep(200 * time.Millisecond)
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
}

// TestDoKeysAreApart checks that reads of different keys do not wait for
// each other.
func TestDoKeysAreApart(t *testing.T) {
	var g flight.Group[string]
	release := make(chan struct{})
	defer close(release)
	go g.Do(t.Context(), "a", func(context.Context) (string, error) { <-release; return "a", nil })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if v, err := g.Do(ctx, "b", func(context.Context) (string, error) { return "b", nil }); err != nil || v != "b" {
		t.Fatalf("key b got %q, %v while a was being read; want b, nil", v, err)
	}
}

// TestDoCallerGivesUp checks that a caller stops waiting when its context
// ends, and that the read it started goes on for the callers still waiting.
func TestDoCallerGivesUp(t *testing.T) {
	var g flight.Group[int]
	started, release := make(chan struct{}), make(chan struct{})
	readErr := make(chan error, 1)
	var reads atomic.Int32
	read := func(ctx context.Context) (int, error) {
		if reads.Add(1) == 1 {
			close(started)
			<-release
			readErr <- ctx.Err()
		}
		return 1, nil
	}
	first, cancel := context.WithCancel(t.Context())
	firstDone := make(chan error, 1)
	go func() {
		_, err := g.Do(first, "k", read)
		firstDone <- err
	}()
	<-started
	second := make(chan int, 1)
	go func() {
		v, err := g.Do(t.Context(), "k", read)
		if err != nil {
			t.Error(err)
		}
		second <- v
	}()
	cancel()
	if err := <-firstDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller that gave up got %v, want context.Canceled", err)
	}
	time.Sleep(50 * time.Millisecond) // the second caller joins the read
	close(release)
	if v := <-second; v != 1 {
		t.Fatalf("the caller still waiting got %d, want 1", v)
	}
	if err := <-readErr; err != nil {
		t.Fatalf("the read saw its context end (%v) when its first caller gave up", err)
	}
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
