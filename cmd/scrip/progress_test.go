package main

import (
	"strings"
	"testing"
	"time"
)

func TestProgress(t *testing.T) {
	var b strings.Builder
	p := newProgress(&b, "verifying")
	p.tick(500, 7)
	p.clear()
	if b.Len() != 0 {
		t.Fatalf("wrote %q to a writer that is not a terminal", b.String())
	}

	p.tty = true // as on a terminal
	p.tick(500, 7)
	if got := b.String(); !strings.HasPrefix(got, "\rverifying: 500 accounts, 7 transactions (") {
		t.Fatalf("line %q", got)
	}
	n := b.Len()
	p.tick(1000, 9)
	if b.Len() != n {
		t.Fatalf("redrew within %s: %q", progressEvery, b.String()[n:])
	}
	p.last = time.Now().Add(-progressEvery)
	p.tick(1000, 9)
	if got := b.String()[n:]; !strings.HasPrefix(got, "\rverifying: 1000 accounts, 9 transactions (") {
		t.Fatalf("second line %q", got)
	}
	n = b.Len()
	p.clear()
	if got := b.String()[n:]; got != "\r\033[K" {
		t.Fatalf("clear wrote %q", got)
	}
}
