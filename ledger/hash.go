package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"time"
)

// txHash returns the hash of a transaction chained to its predecessor: every
// persisted field except Hash itself, in a fixed order with unambiguous
// separators, so an edited, reordered or deleted row is detected.
func txHash(t *Transaction) string {
	var buf [512]byte
	w := hashWriter{b: buf[:0]}
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
	sum := sha256.Sum256(w.b)
	return hex.EncodeToString(sum[:])
}

// hashWriter lays out the fields of a hashed record: a number in decimal
// followed by a NUL; a string as its length (a number) then its bytes. The
// record is built in one buffer and hashed at once.
type hashWriter struct {
	b []byte
}

func (w *hashWriter) str(s string) {
	w.int(int64(len(s)))
	w.b = append(w.b, s...)
}

func (w *hashWriter) int(n int64) {
	w.b = strconv.AppendInt(w.b, n, 10)
	w.b = append(w.b, 0)
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
	var buf [256]byte
	w := hashWriter{b: buf[:0]}
	for _, p := range parts {
		w.str(p)
	}
	sum := sha256.Sum256(w.b)
	return hex.EncodeToString(sum[:16])
}

// mapString stands for a string map in a request hash: empty for no
// entries, else the map's hash in the layout of hashWriter.
func mapString(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	var buf [256]byte
	w := hashWriter{b: buf[:0]}
	w.strMap(m)
	sum := sha256.Sum256(w.b)
	return string(sum[:])
}
