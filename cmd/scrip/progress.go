package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progress draws one status line on a terminal, and nothing elsewhere:
// "exporting: 1200 accounts, 53000 transactions (41000/s)".
type progress struct {
	w     io.Writer
	verb  string
	tty   bool
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer, verb string) *progress {
	f, ok := w.(*os.File)
	return &progress{w: w, verb: verb, tty: ok && isTerminal(f), start: time.Now()}
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// tick redraws the line with the counts so far, at most every
// progressEvery.
func (p *progress) tick(accounts int, txs int64) {
	if !p.tty {
		return
	}
	now := time.Now()
	if now.Sub(p.last) < progressEvery {
		return
	}
	p.last = now
	rate := float64(txs) / max(now.Sub(p.start).Seconds(), 0.001)
	fmt.Fprintf(p.w, "\r%s: %d accounts, %d transactions (%.0f/s)   ", p.verb, accounts, txs, rate)
}

// clear erases the line.
func (p *progress) clear() {
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
