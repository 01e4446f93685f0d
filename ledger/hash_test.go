package ledger

import (
	"testing"
	"time"

	"github.com/scriphq/scrip/credit"
)

// The hash layout is part of every stored journal: chains written by
// earlier versions must keep verifying. The expected values were computed
// by the first implementation, which fed each field to the digest in turn.
func TestHashLayoutIsStable(t *testing.T) {
	tx := &Transaction{ID: "tx_1", AccountID: "acct-1", Seq: 7, Type: TxCharge, Amount: credit.MustParse("2.5"),
		ChargeID: "ch_1", IdempotencyKey: "job-1", RequestHash: "rh",
		Ref:    Ref{Action: "fal-ai/flux/schnell", Job: "job-1", Metadata: map[string]string{"b": "2", "a": "1"}},
		Reason: "r", PrevHash: "prev", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
		Entries: []Entry{
			{Account: "acct-1", Grant: "gr_1", Amount: credit.MustParse("-2.5")},
			{Account: "@spent", Amount: credit.MustParse("2.5")},
		}}
	if got, want := txHash(tx), "a483c34c76e5df0d853f0e7a7b990b0124455c759d1c0c0d49e3ec60f8af2b90"; got != want {
		t.Errorf("txHash = %s, want %s", got, want)
	}
	if got, want := requestHash("charge", "acct-1", "x"), "f532a04166cf4f0377517799e4030508"; got != want {
		t.Errorf("requestHash = %s, want %s", got, want)
	}
	tx.Ref.Metadata["a"] = "changed"
	if txHash(tx) == "a483c34c76e5df0d853f0e7a7b990b0124455c759d1c0c0d49e3ec60f8af2b90" {
		t.Error("a changed field left the hash unchanged")
	}
}
