package ledger

import (
	"strings"
	"testing"

	"github.com/scriphq/scrip/credit"
)

// A transaction whose entries wrap around an Amount's range to zero still
// does not sum to zero.
func TestVerifyTransactionSumPastAmountMax(t *testing.T) {
	var c accountCheck
	v := newAccountVerifier("a", &c)
	tx := &Transaction{ID: "tx_1", AccountID: "a", Seq: 1, Entries: []Entry{
		{Account: SystemIssued, Amount: credit.Max},
		{Account: SystemIssued, Amount: credit.Max},
		{Account: "a", Grant: "g", Amount: 2},
	}}
	tx.Hash = txHash(tx)
	if err := v.add(tx); err != nil {
		t.Fatal(err)
	}
	for _, p := range c.report.Problems {
		if strings.Contains(p, "does not sum to zero") {
			return
		}
	}
	t.Fatalf("problems %q do not say the transaction does not sum to zero", c.report.Problems)
}
