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
	r := record(buf[:0])
	r = r.str(t.PrevHash)
	r = r.str(t.ID)
	r = r.str(t.AccountID)
	r = r.int(t.Seq)
	r = r.str(string(t.Type))
	r = r.int(t.Amount.Micros())
	r = r.str(t.GrantID)
	r = r.str(t.HoldID)
	r = r.str(t.ChargeID)
	r = r.str(t.IdempotencyKey)
	r = r.str(t.RequestHash)
	r = r.str(t.Ref.Action)
	r = r.str(t.Ref.Job)
	r = r.strMap(t.Ref.Metadata)
	r = r.str(t.Reason)
	r = r.int(int64(len(t.Entries)))
	for _, e := range t.Entries {
		r = r.str(e.Account)
		r = r.str(e.Grant)
		r = r.str(e.Hold)
		r = r.int(e.Amount.Micros())
	}
	r = r.time(t.CreatedAt)
	sum := sha256.Sum256(r)
	return hex.EncodeToString(sum[:])
}

// record lays out the fields of a hashed record: a number in decimal
// followed by a NUL; a string as its length (a number) then its bytes. The
// record is built in one buffer and hashed at once. Each method returns the
// record with one more field, so that a buffer on the caller's stack stays
// there (one written through a pointer escapes to the heap).
type record []byte

func (r record) str(s string) record {
	r = r.int(int64(len(s)))
	return append(r, s...)
}

func (r record) int(n int64) record {
	r = strconv.AppendInt(r, n, 10)
	return append(r, 0)
}

func (r record) time(t time.Time) record { return r.int(t.UnixMicro()) }

func (r record) strMap(m map[string]string) record {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	r = r.int(int64(len(keys)))
	for _, k := range keys {
		r = r.str(k)
		r = r.str(m[k])
	}
	return r
}

// requestHash identifies a request's parameters for idempotency checks.
func requestHash(parts ...string) string {
	var buf [256]byte
	r := record(buf[:0])
	for _, p := range parts {
		r = r.str(p)
	}
	sum := sha256.Sum256(r)
	return hex.EncodeToString(sum[:16])
}

// mapString stands for a string map in a request hash: empty for no
// entries, else the map's hash in the layout of record.
func mapString(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	var buf [256]byte
	r := record(buf[:0]).strMap(m)
	sum := sha256.Sum256(r)
	return string(sum[:])
}
