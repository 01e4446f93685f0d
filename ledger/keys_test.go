package ledger

import (
	"fmt"
	"testing"
)

func TestSeenKeys(t *testing.T) {
	s := newSeenKeys()
	key := func(i int) TxKey { return TxKey{AccountID: fmt.Sprintf("acct-%d", i%97), Key: fmt.Sprintf("k%d", i)} }
	// Fill one generation and half of the next: every key of the last
	// keysPerGeneration is still claimed.
	total := keysPerGeneration + keysPerGeneration/2
	batch := make([]TxKey, 0, 512)
	for i := range total {
		batch = append(batch, key(i))
		if len(batch) == cap(batch) || i == total-1 {
			s.add(batch)
			batch = batch[:0]
		}
	}
	for i := total - keysPerGeneration; i < total; i++ {
		if got := s.filter([]TxKey{key(i)}); len(got) != 1 {
			t.Fatalf("key %d of %d forgotten", i, total)
		}
	}
	// Keys never added are claimed rarely; the design rate is about 1 in
	// 400 per generation.
	const unseen = 100_000
	claimed := 0
	for i := range unseen {
		claimed += len(s.filter([]TxKey{key(total + i)}))
	}
	if claimed > unseen/100 {
		t.Fatalf("%d of %d keys never added claimed", claimed, unseen)
	}
	t.Logf("%d of %d keys never added claimed", claimed, unseen)
	// After a conflict every key is read.
	s.conflict()
	if got := s.filter([]TxKey{key(total + 1), key(total + 2)}); len(got) != 2 {
		t.Fatalf("after a conflict filter kept %d of 2 keys", len(got))
	}
}
