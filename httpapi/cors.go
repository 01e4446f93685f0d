package httpapi

import (
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/scriphq/scrip/ledger"
)

const corsMaxAgeSeconds = "600"

// cors sets the CORS headers for allowed origins and answers preflight
// requests; it reports whether the request is fully handled.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || len(s.cfg.CORSOrigins) == 0 {
		return false
	}
	if !slices.Contains(s.cfg.CORSOrigins, "*") && !slices.Contains(s.cfg.CORSOrigins, origin) {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", "Idempotent-Replayed, Retry-After")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key")
		h.Set("Access-Control-Max-Age", corsMaxAgeSeconds)
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}

// limiter is a token bucket per credential.
type limiter struct {
	rate  float64
	burst float64
	clock ledger.Clock

	mu      sync.Mutex
	buckets map[string]*bucket
}

// limiterBucketsMax bounds the limiter's memory; beyond it the buckets start
// over, which only ever errs towards allowing.
const limiterBucketsMax = 100_000

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int, clock ledger.Clock) *limiter {
	if burst < 1 {
		burst = max(1, int(rate))
	}
	return &limiter{rate: rate, burst: float64(burst), clock: clock, buckets: map[string]*bucket{}}
}

func (l *limiter) allow(key string) bool {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= limiterBucketsMax {
			clear(l.buckets)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
