package sqlite

import (
	"context"
	"testing"
	"unsafe"

	sqlite3 "modernc.org/sqlite/lib"
)

// writerMutexOf returns the mutex of the writer connection's handle.
func writerMutexOf(t *testing.T, s *Store) uintptr {
	t.Helper()
	var m uintptr
	found := false
	if err := rawHandle(context.Background(), s.writer, func(h uintptr) {
		m, found = (*sqlite3.Tsqlite3)(unsafe.Add(nil, h)).Fmutex, true
	}); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatal("the driver's connection holds no sqlite3 handle where the store looks for it")
	}
	return m
}

// The writer connection runs without SQLite's connection mutex while the
// store is open, and gets it back before it closes.
func TestWriterWithoutConnectionMutex(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	if s.writerMutex.db == 0 || s.writerMutex.mutex == 0 {
		t.Fatalf("the writer's mutex was not taken off: %+v", s.writerMutex)
	}
	if m := writerMutexOf(t, s); m != 0 {
		t.Errorf("the writer's handle has mutex %#x while the store is open, want none", m)
	}
	taken := s.writerMutex.mutex
	if err := s.writerMutex.restore(ctx, s.writer); err != nil {
		t.Fatal(err)
	}
	if m := writerMutexOf(t, s); m != taken {
		t.Errorf("after restore the handle has mutex %#x, want %#x", m, taken)
	}
	// Off again, for the rest of the store's life and its Close.
	if err := s.writerMutex.release(ctx, s.writer); err != nil {
		t.Fatal(err)
	}
	createAccounts(t, s, "a")
	write(t, s, fixture())
}
