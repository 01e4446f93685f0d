// Package stripemock starts stripe-mock for tests that create Stripe
// objects, the way pgtest provides PostgreSQL.
package stripemock

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// URL starts stripe-mock on loopback for the test and returns its HTTP
// base URL. When stripe-mock is not installed it returns "" after a loud
// log line, except under CI, where that is a failure.
func URL(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("stripe-mock")
	if err != nil {
		gopath, _ := exec.Command("go", "env", "GOPATH").Output()
		cand := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "stripe-mock")
		if _, serr := os.Stat(cand); serr == nil {
			bin = cand
		}
	}
	if bin == "" {
		msg := "stripe-mock is not installed (go install github.com/stripe/stripe-mock@v0.203.0); Stripe API calls are not tested"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Log("SKIPPED: " + msg)
		return ""
	}
	// Both addresses on loopback: with one flag alone stripe-mock opens
	// the other port on every interface.
	httpAddr, httpsAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "-http-addr", httpAddr, "-https-addr", httpsAddr)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start stripe-mock: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", httpAddr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return "http://" + httpAddr
		}
		if time.Now().After(deadline) {
			t.Fatalf("stripe-mock did not listen on %s: %v", httpAddr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
