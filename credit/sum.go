package credit

import (
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"strings"
)

// Sum is a total of Amounts that may pass Max: what a system account has
// issued or taken in over a ledger's life can exceed the 9.2 trillion
// credits one Amount holds. It counts micro-credits in 128 bits, two's
// complement; the zero value is 0.
type Sum struct {
	hi int64
	lo uint64
}

// SumOf is the sum holding a.
func SumOf(a Amount) Sum { return Sum{}.Add(a) }

// Add returns s + a.
func (s Sum) Add(a Amount) Sum {
	lo, carry := bits.Add64(s.lo, uint64(a), 0)
	hi := s.hi + int64(carry)
	if a < 0 {
		hi-- // a's high 64 bits are all ones
	}
	return Sum{hi: hi, lo: lo}
}

// Plus returns s + t.
func (s Sum) Plus(t Sum) Sum {
	lo, carry := bits.Add64(s.lo, t.lo, 0)
	return Sum{hi: s.hi + t.hi + int64(carry), lo: lo}
}

// IsZero reports whether s is 0.
func (s Sum) IsZero() bool { return s.hi == 0 && s.lo == 0 }

// Amount returns s as an Amount, and whether it fits in one: from -Max to
// Max, as Parse reads them.
func (s Sum) Amount() (Amount, bool) {
	switch {
	case s.hi == 0 && s.lo <= math.MaxInt64, s.hi == -1 && s.lo > 1<<63:
		return Amount(int64(s.lo)), true
	}
	return 0, false
}

// micros is s in micro-credits.
func (s Sum) micros() *big.Int {
	n := new(big.Int).Lsh(big.NewInt(s.hi), 64)
	return n.Add(n, new(big.Int).SetUint64(s.lo))
}

// String formats s as Amount.String does: "12", "0.5", "-3.25".
func (s Sum) String() string {
	if a, ok := s.Amount(); ok {
		return a.String()
	}
	n := s.micros()
	sign := ""
	if n.Sign() < 0 {
		sign = "-"
		n.Neg(n)
	}
	whole, frac := new(big.Int).QuoRem(n, big.NewInt(Scale), new(big.Int))
	out := sign + whole.String()
	if frac.Sign() != 0 {
		out += "." + strings.TrimRight(fmt.Sprintf("%06d", frac.Int64()), "0")
	}
	return out
}

// MarshalJSON writes s as a JSON number, as Amount does.
func (s Sum) MarshalJSON() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalJSON accepts what MarshalJSON writes, or a string holding it.
func (s *Sum) UnmarshalJSON(b []byte) error {
	str := strings.Trim(string(b), `"`)
	var a Amount
	if err := a.UnmarshalJSON([]byte(str)); err == nil {
		*s = SumOf(a)
		return nil
	}
	// big.Rat also reads fractions, other bases and digit separators,
	// which an amount never has.
	r, ok := new(big.Rat).SetString(str)
	if !ok || strings.ContainsAny(str, "/_xXoObBpP") {
		return fmt.Errorf("invalid credit total %q", str)
	}
	r.Mul(r, new(big.Rat).SetInt64(Scale))
	if !r.IsInt() {
		return fmt.Errorf("credit total %q has more than %d fractional digits", str, Digits)
	}
	n := r.Num()
	if n.BitLen() > 127 {
		return fmt.Errorf("credit total %q: %w", str, ErrOverflow)
	}
	// Two's complement in 128 bits: n mod 2^128.
	u := new(big.Int).And(n, new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1)))
	lo := new(big.Int).And(u, new(big.Int).SetUint64(math.MaxUint64)).Uint64()
	hi := new(big.Int).Rsh(u, 64).Uint64()
	*s = Sum{hi: int64(hi), lo: lo}
	return nil
}
