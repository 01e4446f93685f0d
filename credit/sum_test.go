package credit

import (
	"encoding/json"
	"math/big"
	"testing"
)

// Sums against math/big, across Amount's bound in both directions.
func TestSumPassesAmountsBound(t *testing.T) {
	steps := []Amount{Max, Max, 1, -Max, -Max, -Max, -Max, -1, Credits(3), -Credits(3), Max, Max, Max, Max}
	var s Sum
	want := new(big.Int)
	for i, a := range steps {
		s = s.Add(a)
		want.Add(want, big.NewInt(int64(a)))
		if got := s.micros(); got.Cmp(want) != 0 {
			t.Fatalf("after step %d: %s micro-credits, want %s", i, got, want)
		}
		_, fits := s.Amount()
		if wantFits := want.IsInt64(); fits != wantFits {
			t.Fatalf("after step %d (%s): fits %v, want %v", i, want, fits, wantFits)
		}
	}
	if got := SumOf(Max).Plus(SumOf(Max)).Plus(SumOf(-Max)).Plus(SumOf(-Max)); !got.IsZero() {
		t.Fatalf("Max+Max-Max-Max = %s", got)
	}
}

func TestSumText(t *testing.T) {
	for _, tc := range []struct {
		s    Sum
		want string
	}{
		{SumOf(Credits(12)), "12"},
		{SumOf(MustParse("-3.25")), "-3.25"},
		{SumOf(Max).Add(1), "9223372036854.775808"},
		{SumOf(-Max).Add(-Max), "-18446744073709.551614"},
		{SumOf(Credits(-5_000_000_000_000)).Add(Credits(-5_000_000_000_000)), "-10000000000000"},
		{Sum{}, "0"},
	} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("String() = %s, want %s", got, tc.want)
		}
		b, err := json.Marshal(map[string]Sum{"t": tc.s})
		if err != nil {
			t.Fatal(err)
		}
		var back map[string]Sum
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if back["t"] != tc.s {
			t.Errorf("%s came back as %s", b, back["t"])
		}
	}
	var s Sum
	for _, bad := range []string{`"x"`, `1.0000001`, `1e40`, `"1/2"`, `"0x10"`, `"1_000"`} {
		if err := json.Unmarshal([]byte(bad), &s); err == nil {
			t.Errorf("%s was accepted as %s", bad, s)
		}
	}
	if a, ok := SumOf(-Max).Amount(); !ok || a != -Max {
		t.Errorf("-Max did not come back: %s, %v", a, ok)
	}
	if _, ok := SumOf(-Max).Add(-1).Amount(); ok {
		t.Error("-Max-1 fits in an Amount, which Parse would refuse")
	}
}
