package rawconn_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scriphq/scrip/internal/rawconn"
)

// pair returns both ends of a loopback TCP connection, each wrapped.
func pair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return dialAccept(t, rawconn.Listen(l), "tcp")
}

func dialAccept(t testing.TB, l net.Listener, network string) (client, server net.Conn) {
	t.Helper()
	type accept struct {
		c   net.Conn
		err error
	}
	accepted := make(chan accept, 1) // never blocks the goroutine, whatever the test does
	go func() {
		c, err := l.Accept()
		accepted <- accept{c, err}
	}()
	var d net.Dialer
	client, err := rawconn.Dial(d.DialContext)(context.Background(), network, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-accepted
	if a.err != nil {
		client.Close()
		t.Fatal(a.err)
	}
	server = a.c
	t.Cleanup(func() { client.Close(); server.Close() })
	// A test whose reads or writes go wrong fails instead of hanging.
	deadline := time.Now().Add(time.Minute)
	client.SetDeadline(deadline)
	server.SetDeadline(deadline)
	return client, server
}

func wrapped(c net.Conn) bool {
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
		return false
	}
	return true
}

func TestWrapsStreamSocketsOnLinux(t *testing.T) {
	client, server := pair(t)
	if want := rawconn.Enabled; wrapped(client) != want || wrapped(server) != want {
		t.Fatalf("wrapped: client %T, server %T; want wrapped %v", client, server, want)
	}
	for _, c := range []net.Conn{client, server} {
		if _, ok := c.(interface{ CloseWrite() error }); !ok {
			t.Errorf("%T lost CloseWrite", c)
		}
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := rawconn.Wrap(a); got != a {
		t.Errorf("Wrap(net.Pipe end) = %T, want it as it was", got)
	}
	// A datagram socket's writes must not be split: left as it is.
	dg, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "d"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer dg.Close()
	if got := rawconn.Wrap(dg); got != net.Conn(dg) {
		t.Errorf("Wrap(unixgram) = %T, want it as it was", got)
	}
}

// Writes larger than the socket's buffers, in both directions at once, so
// that writes return EAGAIN and wait in the poller, arrive whole and in
// order.
func TestLargeTransfersBothWays(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			var client, server net.Conn
			if network == "tcp" {
				client, server = pair(t)
			} else {
				l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				client, server = dialAccept(t, rawconn.Listen(l), "unix")
				if want := rawconn.Enabled; wrapped(client) != want {
					t.Fatalf("unix client %T, want wrapped %v", client, want)
				}
			}
			const size = 8 << 20
			up, down := random(size, 1), random(size, 2)
			var wg sync.WaitGroup
			send := func(c net.Conn, p []byte) {
				defer wg.Done()
				if n, err := c.Write(p); n != len(p) || err != nil {
					t.Errorf("write: %d of %d bytes, %v", n, len(p), err)
				}
			}
			receive := func(c net.Conn, want []byte) {
				defer wg.Done()
				got := make([]byte, len(want))
				if _, err := io.ReadFull(c, got); err != nil {
					t.Errorf("read: %v", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("read %d bytes that differ from those written", len(got))
				}
			}
			wg.Add(4)
			go send(client, up)
			go send(server, down)
			go receive(server, up)
			go receive(client, down)
			wg.Wait()
		})
	}
}

func random(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

func TestEndOfStreamDeadlineAndClose(t *testing.T) {
	client, server := pair(t)

	// A read deadline ends a read that has nothing to read.
	if err := server.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	var buf [16]byte
	_, err := server.Read(buf[:])
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v, want a timeout", err)
	}
	if err := server.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}

	// What was written arrives, then the end of the stream.
	if _, err := client.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	if err := client.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(server)
	if string(got) != "last words" || err != nil {
		t.Fatalf("read %q, %v; want %q and the end of the stream", got, err, "last words")
	}
	if n, err := server.Read(buf[:]); n != 0 || err != io.EOF {
		t.Fatalf("read after the end: %d, %v; want 0, io.EOF", n, err)
	}

	// A read blocked in the poller ends when its connection is closed.
	done := make(chan error, 1)
	go func() {
		_, err := client.Read(buf[:])
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	client.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a closed connection: %v, want net.ErrClosed", err)
	}
	if _, err := client.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a closed connection: %v, want net.ErrClosed", err)
	}
	if _, err := client.Read(nil); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("empty read on a closed connection: %v, want net.ErrClosed", err)
	}
}

// Writing to a peer that has gone fails with the system's error, and the
// process goes on (a raw write raises SIGPIPE as the net package's does).
func TestWriteToPeerThatHasGone(t *testing.T) {
	client, server := pair(t)
	if tc, ok := server.(interface{ SetLinger(int) error }); ok {
		tc.SetLinger(0) // close with a reset
	}
	server.Close()
	var err error
	for range 100 {
		if _, err = client.Write(make([]byte, 4096)); err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("write to a peer that has gone: %v, want EPIPE or ECONNRESET", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("write error %#v is not a net.OpError of a write", err)
	}
	var buf [8]byte
	if _, err := client.Read(buf[:]); err == nil {
		t.Fatal("read from a reset connection succeeded")
	}
}

func TestHTTPOverWrappedConnections(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Write(bytes.ToUpper(body))
	})}
	go srv.Serve(rawconn.Listen(l))
	defer srv.Close()
	var d net.Dialer
	client := &http.Client{Transport: &http.Transport{DialContext: rawconn.Dial(d.DialContext)}}
	defer client.CloseIdleConnections()
	for i := range 50 {
		body := strings.Repeat("credit ", 1+i*500)
		resp, err := client.Post("http://"+l.Addr().String(), "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(got) != strings.ToUpper(body) {
			t.Fatalf("request %d: %d bytes back, %v; want the body in capitals", i, len(got), err)
		}
	}
}
