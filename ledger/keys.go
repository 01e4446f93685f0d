package ledger

import (
	"hash/maphash"
	"sync"
	"time"
)

// A batch reads from the journal only the idempotency keys it may find
// there. Every operation carries a key and almost every key is new, so
// reading them all would cost each operation one probe of the journal's
// largest index for nothing. The journal stays the check: when a key the
// batch did not read is there, either its operation succeeded again and the
// unique index on (account, key) refuses the write with ErrKeyExists, or it
// failed and the batch reads the keys of its failed operations before it
// commits (Engine.apply). Either way the batch runs again reading all of
// its keys, which gives the same results as reading them all the first
// time.

// Bounds of the keys filter.
const (
	// keysPerGeneration is how many keys fill one generation of the
	// filter; with two generations it remembers at least the last that
	// many keys and at most twice as many.
	keysPerGeneration = 1 << 20
	// keyBitsPerKey sizes a generation: with 16 bits a key and 4 probes
	// a full generation claims about one key in 400 that it never saw, and
	// the two together one in 200 at most (each costs a needless read).
	keyBitsPerKey = 16
	keyProbes     = 4
	// keysReadAllAfterConflict is how long the engine reads every key after
	// a batch found a key it did not expect: keys committed by another
	// process, or before a restart, tend to come back in runs.
	keysReadAllAfterConflict = 5 * time.Second
)

// seenKeys is an approximate set of the keys this engine committed lately:
// a Bloom filter in two generations. It never forgets a key within its
// window; it may claim a key it never saw.
type seenKeys struct {
	mu       sync.Mutex
	seed     maphash.Seed
	cur, old []uint64
	n        int // keys added to cur
	// readAllUntil, if later than now, makes every key maybe seen.
	readAllUntil time.Time
}

func newSeenKeys() *seenKeys {
	words := keysPerGeneration * keyBitsPerKey / 64
	return &seenKeys{seed: maphash.MakeSeed(), cur: make([]uint64, words), old: make([]uint64, words)}
}

// filter returns the keys that may have been committed.
func (s *seenKeys) filter(keys []TxKey) []TxKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Now().Before(s.readAllUntil) {
		return keys
	}
	var out []TxKey
	for _, k := range keys {
		h := s.hash(k)
		if s.has(s.cur, h) || s.has(s.old, h) {
			out = append(out, k)
		}
	}
	return out
}

// add records the keys of a committed batch. Those of its failed
// operations go in too: they cost a needless read at worst.
func (s *seenKeys) add(keys []TxKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if s.n >= keysPerGeneration {
			s.cur, s.old = s.old, s.cur
			clear(s.cur)
			s.n = 0
		}
		h := s.hash(k)
		for i := range uint32(keyProbes) {
			b := probe(h, i, len(s.cur))
			s.cur[b/64] |= 1 << (b % 64)
		}
		s.n++
	}
}

// conflict makes every key maybe seen for a while.
func (s *seenKeys) conflict() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readAllUntil = time.Now().Add(keysReadAllAfterConflict)
}

func (s *seenKeys) has(bits []uint64, h uint64) bool {
	for i := range uint32(keyProbes) {
		b := probe(h, i, len(bits))
		if bits[b/64]&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

// probe returns the i-th bit of h in a set of the given number of words
// (double hashing).
func probe(h uint64, i uint32, words int) uint32 {
	return (uint32(h) + i*(uint32(h>>32)|1)) % uint32(words*64)
}

func (s *seenKeys) hash(k TxKey) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteString(k.AccountID)
	h.WriteByte(0)
	h.WriteString(k.Key)
	return h.Sum64()
}
