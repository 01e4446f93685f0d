package bench

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawServer answers every request on a connection with the next of replies,
// written byte for byte, and records the requests it parsed.
type rawServer struct {
	ln       net.Listener
	replies  []string
	requests chan *http.Request
	conns    atomic.Int32
}

func newRawServer(t *testing.T, replies ...string) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, replies: replies, requests: make(chan *http.Request, 16)}
	t.Cleanup(func() { ln.Close() })
	var next atomic.Int32 // the reply to send next, over all connections
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(r)
					if err != nil {
						return
					}
					body, _ := io.ReadAll(req.Body)
					req.Body = io.NopCloser(strings.NewReader(string(body)))
					s.requests <- req
					n := int(next.Add(1))
					if n > len(s.replies) {
						return
					}
					reply := s.replies[n-1]
					if _, err := io.WriteString(c, reply); err != nil {
						return
					}
					last := n == len(s.replies)
					if last || strings.Contains(reply, "Connection: close") || !strings.Contains(reply, "Length") && !strings.Contains(reply, "chunked") {
						return
					}
				}
			}()
		}
	}()
	return s
}

func (s *rawServer) target(t *testing.T) *httpTarget {
	addr := s.ln.Addr().String()
	return &httpTarget{base: "http://" + addr, key: "sk_test", wire: &wire{addr: addr, host: addr}}
}

func TestWireRequestAndKeepAlive(t *testing.T) {
	s := newRawServer(t,
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"id\":\"ch1\"}",
		"HTTP/1.1 201 Created\r\ncontent-length: 12\r\n\r\n{\"id\":\"ch2\"}",
	)
	tg := s.target(t)
	for i, want := range []string{"ch1", "ch2"} {
		var out idJSON
		if err := tg.do(context.Background(), "POST", "/v1/accounts/a%2Fb/charges", "key-1", map[string]int{"credits": 5}, &out); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if out.ID != want {
			t.Errorf("request %d: id %q, want %q", i, out.ID, want)
		}
		req := <-s.requests
		body, _ := io.ReadAll(req.Body)
		if req.Method != "POST" || req.URL.RawPath != "/v1/accounts/a%2Fb/charges" || string(body) != `{"credits":5}` {
			t.Errorf("request %d: %s %s %q", i, req.Method, req.URL.RawPath, body)
		}
		if req.Header.Get("Authorization") != "Bearer sk_test" || req.Header.Get("Idempotency-Key") != "key-1" ||
			req.Header.Get("Content-Type") != "application/json" || req.Host != s.ln.Addr().String() {
			t.Errorf("request %d: headers %v, host %q", i, req.Header, req.Host)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections for two requests, want one kept alive", n)
	}
}

func TestWireBodies(t *testing.T) {
	keep := map[string]int{"chunked": 1, "interim": 1} // connections kept for the next request
	for name, reply := range map[string]string{
		"chunked":     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"id\"\r\n7;ext=1\r\n:\"ch9\"}\r\n0\r\nX-Trailer: 1\r\n\r\n",
		"close":       "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 12\r\n\r\n{\"id\":\"ch9\"}",
		"unbounded":   "HTTP/1.0 200 OK\r\n\r\n{\"id\":\"ch9\"}",
		"interim":     "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{\"id\":\"ch9\"}",
		"close token": "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 12\r\n\r\n{\"id\":\"ch9\"}",
	} {
		t.Run(name, func(t *testing.T) {
			s := newRawServer(t, reply, reply)
			tg := s.target(t)
			for i := range 2 {
				var out idJSON
				if err := tg.do(context.Background(), "GET", "/x", "", nil, &out); err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if out.ID != "ch9" {
					t.Errorf("request %d: id %q, want ch9", i, out.ID)
				}
				if idle := len(tg.wire.idle); idle != keep[name] {
					t.Errorf("request %d: %d idle connections, want %d", i, idle, keep[name])
				}
			}
		})
	}
}

func TestWireErrors(t *testing.T) {
	t.Run("problem", func(t *testing.T) {
		body := `{"code":"insufficient_credits","detail":"needs 5"}`
		s := newRawServer(t, "HTTP/1.1 402 Payment Required\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
		err := s.target(t).do(context.Background(), "POST", "/c", "k", map[string]int{}, nil)
		if code := errorCode(err); code != "insufficient_credits" {
			t.Fatalf("error %v (code %q), want insufficient_credits", err, code)
		}
	})
	t.Run("status without problem", func(t *testing.T) {
		s := newRawServer(t, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		err := s.target(t).do(context.Background(), "GET", "/c", "", nil, nil)
		if err == nil || !strings.Contains(err.Error(), "502 Bad Gateway") {
			t.Fatalf("error %v, want the status", err)
		}
	})
	for name, reply := range map[string]string{
		"not http":         "SSH-2.0-OpenSSH\r\n\r\n",
		"bad length":       "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
		"short body":       "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{}",
		"bad chunk":        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"other encoding":   "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"header no colon":  "HTTP/1.1 200 OK\r\nnonsense\r\n\r\n",
		"too large":        "HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
		"closed at once":   "",
		"undecodable json": "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{x}",
		"signed length":    "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n{}",
		"two lengths":      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
		"signed status":    "HTTP/1.1 +20 OK\r\nContent-Length: 2\r\n\r\n{}",
		"huge chunk":       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n7fffffffffffffff\r\n",
		"switching":        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
		"partial status":   "HTTP/1.1 20",
	} {
		t.Run(name, func(t *testing.T) {
			s := newRawServer(t, reply)
			var out idJSON
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			tg := s.target(t)
			for i := range 2 { // the first on a new connection, the second on a reused one if kept
				if err := tg.do(ctx, "GET", "/c", "", nil, &out); err == nil {
					t.Fatalf("request %d: no error", i)
				}
			}
		})
	}
	t.Run("context deadline", func(t *testing.T) {
		tg := silentServer(t)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err := tg.do(ctx, "GET", "/c", "", nil, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want the context's deadline", err)
		}
	})
	t.Run("operation time-out", func(t *testing.T) {
		tg := silentServer(t)
		tg.wire.timeout = 100 * time.Millisecond
		err := tg.do(context.Background(), "GET", "/c", "", nil, nil)
		if code := errorCode(err); code != "timeout" {
			t.Fatalf("error %v counted as %q, want timeout", err, code)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		tg := silentServer(t)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		err := tg.do(ctx, "GET", "/c", "", nil, nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("returned after %v: the request in flight was not abandoned", d)
		}
	})
}

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) *httpTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	addr := ln.Addr().String()
	return &httpTarget{key: "k", wire: &wire{addr: addr, host: addr}}
}

// A server may close a kept-alive connection while it sits idle; the next
// request on it goes out again on a new connection.
func TestWireIdleConnectionClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed := make(chan struct{}, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { // one request per connection, then close it silently
				defer func() { c.Close(); closed <- struct{}{} }()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{\"id\":\"ch1\"}")
			}()
		}
	}()
	addr := ln.Addr().String()
	tg := &httpTarget{key: "k", wire: &wire{addr: addr, host: addr}}
	for i := range 2 {
		var out idJSON
		if err := tg.do(context.Background(), "POST", "/c", "key", map[string]int{}, &out); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if out.ID != "ch1" {
			t.Fatalf("request %d: id %q", i, out.ID)
		}
		<-closed
	}
}
