package rowjson_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/internal/rowjson"
	"github.com/scriphq/scrip/ledger"
)

// The rows as the stores encoded them with encoding/json.
type entryJSON struct {
	Account string `json:"account"`
	Grant   string `json:"grant,omitempty"`
	Hold    string `json:"hold,omitempty"`
	Amount  int64  `json:"amount"`
}

type allocationJSON struct {
	GrantID string `json:"grant_id"`
	Amount  int64  `json:"amount"`
}

func marshalEntries(t testing.TB, es []ledger.Entry) []byte {
	if es == nil {
		return nil
	}
	js := make([]entryJSON, len(es))
	for i, e := range es {
		js[i] = entryJSON{Account: e.Account, Grant: e.Grant, Hold: e.Hold, Amount: e.Amount.Micros()}
	}
	b, err := json.Marshal(js)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func marshalAllocations(t testing.TB, as []ledger.Allocation) []byte {
	if as == nil {
		return nil
	}
	js := make([]allocationJSON, len(as))
	for i, a := range as {
		js[i] = allocationJSON{GrantID: a.GrantID, Amount: a.Amount.Micros()}
	}
	b, err := json.Marshal(js)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var strs = []string{
	"", "acct_1", "gr_mxcq3qqt2o77nempyxn73", "@system", "a b", `q"uote`, `back\slash`, "<tag>&amp;",
	"tab\there", "nl\n", "\x00nul", "\x7f", "ü", "日本", "\u2028\u2029", "bad\xffutf8", "\xc3", "emoji 😀", "~!#$%^*()_+{}|:?,./;'[]=-`",
}

func randString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return strs[r.IntN(len(strs))]
	}
	b := make([]byte, r.IntN(12))
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return string(b)
}

func TestSameAsEncodingJSON(t *testing.T) {
	amounts := []int64{0, 1, -1, 5_000_000, -123456789012345678, math.MaxInt64, math.MinInt64}
	if got := rowjson.Entries(nil); got != nil {
		t.Errorf("Entries(nil) = %q, want nil", got)
	}
	if got := rowjson.Allocations(nil); got != nil {
		t.Errorf("Allocations(nil) = %q, want nil", got)
	}
	for _, c := range []struct {
		es []ledger.Entry
		as []ledger.Allocation
	}{{es: []ledger.Entry{}, as: []ledger.Allocation{}}} {
		if got, want := rowjson.Entries(c.es), marshalEntries(t, c.es); string(got) != string(want) {
			t.Errorf("empty entries: %s, want %s", got, want)
		}
		if got, want := rowjson.Allocations(c.as), marshalAllocations(t, c.as); string(got) != string(want) {
			t.Errorf("empty allocations: %s, want %s", got, want)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		es := make([]ledger.Entry, r.IntN(5))
		for i := range es {
			es[i] = ledger.Entry{Account: randString(r), Amount: credit.Micros(amounts[r.IntN(len(amounts))] + r.Int64N(1000))}
			if r.IntN(2) == 0 {
				es[i].Grant = randString(r)
			}
			if r.IntN(3) == 0 {
				es[i].Hold = randString(r)
			}
		}
		if got, want := rowjson.Entries(es), marshalEntries(t, es); string(got) != string(want) {
			t.Fatalf("entries %q:\n got %s\nwant %s", es, got, want)
		}
		as := make([]ledger.Allocation, r.IntN(4))
		for i := range as {
			as[i] = ledger.Allocation{GrantID: randString(r), Amount: credit.Micros(amounts[r.IntN(len(amounts))] - r.Int64N(1000))}
		}
		if got, want := rowjson.Allocations(as), marshalAllocations(t, as); string(got) != string(want) {
			t.Fatalf("allocations %q:\n got %s\nwant %s", as, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range strs {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := rowjson.AppendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("AppendString(%q) = %s, want x%s", s, got, want)
		}
	})
}

// A charge's journal entries: the account's debit from one grant, and the
// system account's credit.
var charge = []ledger.Entry{
	{Account: "acct_000042", Grant: "gr_mxcq3qqt2o77nempyxn73", Amount: credit.Micros(-5_000_000)},
	{Account: "@revenue", Amount: credit.Micros(5_000_000)},
}

func BenchmarkEntries(b *testing.B) {
	b.Run("rowjson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rowjson.Entries(charge)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			marshalEntries(b, charge)
		}
	})
}
