package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"slices"
	"strconv"
	"time"
)

// txHash returns the hash of a transaction chained to its predecessor: every
// persisted field except Hash itself, in a fixed order with unambiguous
// separators, so an edited, reordered or deleted row is detected.
func txHash(t *Transaction) string {
	h := sha256.New()
	w := hashWriter{h: h}
	w.str(t.PrevHash)
	w.str(t.ID)
	w.str(t.AccountID)
	w.int(t.Seq)
	w.str(string(t.Type))
	w.int(t.Amount.Micros())
	w.str(t.GrantID)
	w.str(t.HoldID)
	w.str(t.ChargeID)
	w.str(t.IdempotencyKey)
	w.str(t.RequestHash)
	w.str(t.Ref.Action)
	w.str(t.Ref.Job)
	w.strMap(t.Ref.Metadata)
	w.str(t.Reason)
	w.int(int64(len(t.Entries)))
	for _, e := range t.Entries {
		w.str(e.Account)
		w.str(e.Grant)
		w.str(e.Hold)
		w.int(e.Amount.Micros())
	}
	w.time(t.CreatedAt)
	return hex.EncodeToString(h.Sum(nil))
}

type hashWriter struct {
	h   hash.Hash
	buf [32]byte
}

func (w *hashWriter) str(s string) {
	w.int(int64(len(s)))
	w.h.Write([]byte(s))
}

func (w *hashWriter) int(n int64) {
	b := strconv.AppendInt(w.buf[:0], n, 10)
	b = append(b, 0)
	w.h.Write(b)
}

func (w *hashWriter) time(t time.Time) { w.int(t.UnixMicro()) }

func (w *hashWriter) strMap(m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	w.int(int64(len(keys)))
	for _, k := range keys {
		w.str(k)
		w.str(m[k])
	}
}

// requestHash identifies a request's parameters for idempotency checks.
func requestHash(parts ...string) string {
	h := sha256.New()
	w := hashWriter{h: h}
	for _, p := range parts {
		w.str(p)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func newDigest() hash.Hash { return sha256.New() }
