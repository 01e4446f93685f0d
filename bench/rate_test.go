package bench

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scriphq/scrip/credit"
)

// slowTarget charges in a fixed time and does nothing else.
type slowTarget struct{ took time.Duration }

var errNotInWorkload = errors.New("not in this workload")

func (s slowTarget) name() string { return "slow" }
func (s slowTarget) fund(context.Context, string, string, credit.Amount) error {
	return nil
}
func (s slowTarget) charge(context.Context, string, string, credit.Amount) (string, error) {
	time.Sleep(s.took)
	return "ch", nil
}
func (s slowTarget) hold(context.Context, string, string, credit.Amount) (string, error) {
	return "", errNotInWorkload
}
func (s slowTarget) capture(context.Context, string, string, credit.Amount) error {
	return errNotInWorkload
}
func (s slowTarget) release(context.Context, string, string) error { return errNotInWorkload }
func (s slowTarget) refund(context.Context, string, string, credit.Amount) error {
	return errNotInWorkload
}
func (s slowTarget) balance(context.Context, string) (credit.Amount, error) {
	return 0, errNotInWorkload
}
func (s slowTarget) quote(context.Context) error { return errNotInWorkload }
func (s slowTarget) verify(context.Context, func(int)) (Verify, error) {
	return Verify{OK: true}, nil
}
func (s slowTarget) batches() *BatchStats        { return nil }
func (s slowTarget) close(context.Context) error { return nil }

// With a rate, an operation that waits for a busy client counts the wait:
// one client, charges of 5 ms asked for every millisecond. Closed loop,
// every latency would be 5 ms.
func TestRateCountsLatencyFromTheSchedule(t *testing.T) {
	t.Parallel()
	const ops = 20
	took := 5 * time.Millisecond
	cfg := Config{Workload: WorkloadCharge, Accounts: 1, Concurrency: 1, Ops: ops, Seed: 1, Rate: 1000}
	res := newLoad(cfg, slowTarget{took: took}, []string{"a"}, "r").run(context.Background())
	if res.Ops != ops || res.ErrorCount != 0 {
		t.Fatalf("%d operations, errors %v; want %d without errors", res.Ops, res.Errors, ops)
	}
	// The last charge was due after 19 ms and started after 95 ms at the
	// earliest: it waited 76 ms for the client, and took 5.
	if wantMin := float64(ops-1)*float64(took-time.Millisecond)/1e6 + 5; res.MaxMs < wantMin {
		t.Errorf("slowest latency %.3f ms, want at least %.0f ms counted from its scheduled start", res.MaxMs, wantMin)
	}
	// Every charge but the first started at least 4 ms late.
	if res.LateOps < ops-1 {
		t.Errorf("%d operations started late, want at least %d", res.LateOps, ops-1)
	}
	if res.TargetOpsPerSec != 1000 {
		t.Errorf("target_ops_per_sec %.2f, want the 1000 asked", res.TargetOpsPerSec)
	}

	cfg.Rate = 0
	closed := newLoad(cfg, slowTarget{took: took}, []string{"a"}, "r").run(context.Background())
	if closed.TargetOpsPerSec != 0 || closed.LateOps != 0 {
		t.Errorf("closed loop reports a schedule: target %.2f, late %d", closed.TargetOpsPerSec, closed.LateOps)
	}
}

// A run with a rate stops at its duration, without the operations
// scheduled after it, and a context that ends stops the waits.
func TestRateStopsAtTheDuration(t *testing.T) {
	t.Parallel()
	cfg := Config{Workload: WorkloadCharge, Accounts: 1, Concurrency: 4, Duration: 200 * time.Millisecond, Seed: 1, Rate: 50}
	res := newLoad(cfg, slowTarget{}, []string{"a"}, "r").run(context.Background())
	// Due at 0, 20, ..., 180 ms: ten, of which a slow machine may start
	// the last ones after the end. Closed loop, thousands.
	if res.Ops < 1 || res.Ops > 10 {
		t.Errorf("%d operations in 200 ms at 50 a second, want 10 at most", res.Ops)
	}
	// The rate is over the schedule's span, the whole duration, though
	// the last charge ended at about 180 ms.
	if res.Seconds < 0.2 || res.OpsPerSec > 50 {
		t.Errorf("%d operations in %.3f s: %.2f a second, want at most the 50 asked over the 200 ms", res.Ops, res.Seconds, res.OpsPerSec)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cfg = Config{Workload: WorkloadCharge, Accounts: 1, Concurrency: 2, Ops: 5, Seed: 1, Rate: 0.001}
	done := make(chan *Result)
	go func() { done <- newLoad(cfg, slowTarget{}, []string{"a"}, "r").run(ctx) }()
	cancel()
	select {
	case res := <-done:
		// The first is due at once; the next one 1,000 s later.
		if res.Ops > 1 {
			t.Errorf("%d operations after the context ended, want at most the first", res.Ops)
		}
	case <-time.After(time.Minute):
		t.Fatal("the run went on waiting for its schedule after its context ended")
	}
}
