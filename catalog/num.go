package catalog

import (
	"math"
	"math/bits"

	"github.com/scriphq/scrip/credit"
)

// num is an exact decimal with six fractional digits, the scale of
// credit.Amount. Products and quotients that need more digits round half
// away from zero at the sixth; anything outside the int64 range is an error,
// never a wrapped value.
type num int64

const numOne num = credit.Scale

func numInt(n int64) num { return num(n * credit.Scale) }

func (a num) String() string { return credit.Amount(a).String() }

func (a num) amount() credit.Amount { return credit.Amount(a) }

func parseNum(s string) (num, error) {
	a, err := credit.Parse(s)
	return num(a), err
}

func absU(a num) uint64 {
	if a < 0 {
		return uint64(-a)
	}
	return uint64(a)
}

func signed(u uint64, neg bool) (num, bool) {
	if u > math.MaxInt64 {
		return 0, false
	}
	if neg {
		return -num(u), true
	}
	return num(u), true
}

func (a num) add(b num) (num, bool) {
	s := a + b
	if (a > 0 && b > 0 && s < 0) || (a < 0 && b < 0 && s >= 0) {
		return 0, false
	}
	return s, true
}

func (a num) sub(b num) (num, bool) {
	if b == math.MinInt64 {
		return 0, false
	}
	return a.add(-b)
}

func (a num) mul(b num) (num, bool) {
	hi, lo := bits.Mul64(absU(a), absU(b))
	if hi >= credit.Scale {
		return 0, false
	}
	q, r := bits.Div64(hi, lo, credit.Scale)
	if r >= credit.Scale-r {
		q++
	}
	return signed(q, (a < 0) != (b < 0))
}

func (a num) div(b num) (num, bool) {
	if b == 0 {
		return 0, false
	}
	d := absU(b)
	hi, lo := bits.Mul64(absU(a), credit.Scale)
	if hi >= d {
		return 0, false
	}
	q, r := bits.Div64(hi, lo, d)
	if r >= d-r {
		q++
	}
	return signed(q, (a < 0) != (b < 0))
}

// Rounding modes to whole units.
const (
	roundNone  = ""
	roundHalf  = "round" // half away from zero: 4.5 -> 5, -4.5 -> -5
	roundCeil  = "ceil"
	roundFloor = "floor"
)

var roundModes = []string{"none", roundHalf, roundCeil, roundFloor}

func (a num) roundTo(mode string) num {
	if mode == roundNone || mode == "none" {
		return a
	}
	whole, frac := a/numOne, a%numOne
	switch mode {
	case roundHalf:
		if frac >= numOne/2 {
			whole++
		} else if frac <= -numOne/2 {
			whole--
		}
	case roundCeil:
		if frac > 0 {
			whole++
		}
	case roundFloor:
		if frac < 0 {
			whole--
		}
	}
	return whole * numOne
}
