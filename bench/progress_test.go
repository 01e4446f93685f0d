package bench

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a strings.Builder safe for the progress goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestPhaseProgress(t *testing.T) {
	phaseProgress(nil, "funding", 10, func() int64 { return 3 })() // draws nothing, does not block

	for _, c := range []struct {
		total int
		n     int64
		want  string
	}{
		{10, 3, "\rfunding: 3 of 10 accounts"},
		{10, 12, "\rfunding: 10 of 10 accounts"}, // a counter run past the end
		{0, 700, "\rfunding: 700 accounts"},
	} {
		var w syncBuffer
		stop := phaseProgress(&w, "funding", c.total, func() int64 { return c.n })
		// The line is drawn once a second: wait for it (bounded).
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(w.String(), c.want) && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		stop()
		got := w.String()
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("total %d, n %d: drew %q, want it to start with %q", c.total, c.n, got, c.want)
		}
		if !strings.HasSuffix(got, "\r\033[K") {
			t.Errorf("total %d, n %d: %q does not end by erasing the line", c.total, c.n, got)
		}
	}
}
