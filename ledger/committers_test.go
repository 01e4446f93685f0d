package ledger

import (
	"context"
	"testing"
)

// countedStore is a store that names its own number of committers.
type countedStore struct {
	*benchStore
	n int
}

func (s countedStore) Committers() int { return s.n }

func TestCommittersDefault(t *testing.T) {
	t.Parallel()
	plain, _ := newBenchStore(1)
	tests := []struct {
		name  string
		store Store
		asked int
		want  int
	}{
		{"a store with no figure runs one", plain, 0, 1},
		{"a store's figure is the default", countedStore{plain, 2}, 0, 2},
		{"the options win over the store", countedStore{plain, 2}, 3, 3},
		{"one asked for is one", countedStore{plain, 2}, 1, 1},
		{"a store's zero means one", countedStore{plain, 0}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewEngine(tt.store, Options{Committers: tt.asked, SweepEvery: -1})
			defer e.Close(context.Background())
			if got := e.Options().Committers; got != tt.want || len(e.queues) != tt.want {
				t.Errorf("Options().Committers %d, queues %d; want %d", got, len(e.queues), tt.want)
			}
		})
	}
}
