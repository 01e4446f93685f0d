// Package credit defines Amount, the exact credit quantity used wherever
// credits flow. There is no binary floating point anywhere in it.
package credit

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Scale is the number of Amount units in one credit: amounts are exact to
// six fractional digits (0.5-credit chat edits, 0.6 credits per second).
const Scale = 1_000_000

// Digits is the number of fractional digits an Amount holds.
const Digits = 6

// Amount is a signed quantity of credits in millionths of a credit.
type Amount int64

// Max is the largest representable amount (about 9.2 trillion credits).
const Max = Amount(math.MaxInt64)

// ErrOverflow is returned when arithmetic leaves the representable range.
var ErrOverflow = errors.New("credit amount out of range")

// Credits returns n whole credits.
func Credits(n int64) Amount { return Amount(n * Scale) }

// Micros returns n millionths of a credit.
func Micros(n int64) Amount { return Amount(n) }

// Micros returns the amount in millionths of a credit.
func (a Amount) Micros() int64 { return int64(a) }

// IsZero reports whether a is zero.
func (a Amount) IsZero() bool { return a == 0 }

// Sign returns -1, 0 or +1.
func (a Amount) Sign() int {
	switch {
	case a < 0:
		return -1
	case a > 0:
		return 1
	}
	return 0
}

// Neg returns -a.
func (a Amount) Neg() Amount { return -a }

// Add returns a+b, or ErrOverflow.
func (a Amount) Add(b Amount) (Amount, error) {
	s := a + b
	if (s > a) != (b > 0) && b != 0 {
		return 0, ErrOverflow
	}
	return s, nil
}

// Sub returns a-b, or ErrOverflow.
func (a Amount) Sub(b Amount) (Amount, error) {
	if b == math.MinInt64 {
		return 0, ErrOverflow
	}
	return a.Add(-b)
}

// Min returns the smaller of a and b.
func Min(a, b Amount) Amount {
	if a < b {
		return a
	}
	return b
}

// Max returns the larger of a and b.
func MaxOf(a, b Amount) Amount {
	if a > b {
		return a
	}
	return b
}

// MulInt returns a*n, or ErrOverflow.
func (a Amount) MulInt(n int64) (Amount, error) {
	hi, lo := bits.Mul64(uint64(abs(int64(a))), uint64(abs(n)))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, ErrOverflow
	}
	r := int64(lo)
	if (a < 0) != (n < 0) {
		r = -r
	}
	return Amount(r), nil
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// String formats a as a decimal without trailing zeros: "12", "0.5", "-3.25".
func (a Amount) String() string {
	neg := a < 0
	u := uint64(a)
	if neg {
		u = uint64(-a)
	}
	whole, frac := u/Scale, u%Scale
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	b.WriteString(strconv.FormatUint(whole, 10))
	if frac != 0 {
		f := fmt.Sprintf("%06d", frac)
		b.WriteByte('.')
		b.WriteString(strings.TrimRight(f, "0"))
	}
	return b.String()
}

// Parse reads a decimal such as "12", "0.5", "-3.250000" or "1e3". More than
// six fractional digits is an error, never a silent rounding.
func Parse(s string) (Amount, error) {
	orig := s
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty credit amount")
	}
	exp := 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e > 18 || e < -18 {
			return 0, fmt.Errorf("invalid credit amount %q", orig)
		}
		exp, s = e, s[:i]
	}
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" {
		return 0, fmt.Errorf("invalid credit amount %q", orig)
	}
	digits := whole + frac
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("invalid credit amount %q", orig)
		}
	}
	// value = digits * 10^(exp - len(frac)); we need it times 10^6.
	shift := exp - len(frac) + Digits
	digits = strings.TrimLeft(digits, "0")
	if shift < 0 {
		cut := len(digits) + shift
		if cut < 0 {
			cut = 0
		}
		if strings.Trim(digits[cut:], "0") != "" {
			return 0, fmt.Errorf("credit amount %q has more than %d fractional digits", orig, Digits)
		}
		digits = digits[:cut]
	} else {
		digits += strings.Repeat("0", shift)
	}
	if digits == "" {
		return 0, nil
	}
	if len(digits) > 19 {
		return 0, fmt.Errorf("credit amount %q: %w", orig, ErrOverflow)
	}
	u, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || u > math.MaxInt64 {
		return 0, fmt.Errorf("credit amount %q: %w", orig, ErrOverflow)
	}
	if neg {
		return Amount(-int64(u)), nil
	}
	return Amount(u), nil
}

// MustParse is Parse for constants in tests and tables; it panics on error.
func MustParse(s string) Amount {
	a, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return a
}

// MarshalJSON writes a as a JSON number ("0.5", "12").
func (a Amount) MarshalJSON() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalJSON accepts a JSON number or a string holding one.
func (a *Amount) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if s == "null" {
		return fmt.Errorf("credit amount must not be null")
	}
	v, err := Parse(s)
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// MarshalText and UnmarshalText make Amount usable in YAML and text formats.
func (a Amount) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

func (a *Amount) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}
