package bench

import (
	"time"

	"github.com/scriphq/scrip/ledger"
)

// Phase is the time one step of the batches took (ledger.Step): round
// trips, the work in memory, the commit's flush to disk.
type Phase struct {
	Name   string  `json:"name"`
	Calls  int64   `json:"calls"`
	MeanMs float64 `json:"mean_ms"`
	TotalS float64 `json:"total_s"`
}

// stepTotals adds up the time of each step of the batches.
type stepTotals struct {
	total map[ledger.Step]time.Duration
	calls map[ledger.Step]int64
}

func newStepTotals() stepTotals {
	return stepTotals{total: map[ledger.Step]time.Duration{}, calls: map[ledger.Step]int64{}}
}

func (s stepTotals) add(step ledger.Step, d time.Duration) {
	s.total[step] += d
	s.calls[step]++
}

// phases returns every step that ran, in the order a batch runs them,
// with its mean milliseconds per call.
func (s stepTotals) phases() []Phase {
	var out []Phase
	for _, step := range ledger.Steps {
		n := s.calls[step]
		if n == 0 {
			continue
		}
		out = append(out, Phase{Name: string(step), Calls: n,
			MeanMs: round3(float64(s.total[step].Microseconds()) / 1000 / float64(n)),
			TotalS: round2(s.total[step].Seconds())})
	}
	return out
}
