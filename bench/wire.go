package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/scriphq/scrip/internal/rawconn"
)

// wire is the load generator's HTTP/1.1 client for plain http:// servers:
// keep-alive connections, each request written from one reused buffer and
// each response read straight off the connection. It does on the client's
// side what a server is measured doing on its own, without the per-request
// goroutines and allocations of net/http's client, so that on one machine
// the load generator leaves the cores to the server. Over https the
// load generator uses net/http.
type wire struct {
	addr    string        // host:port to dial
	host    string        // Host header
	timeout time.Duration // bounds one request; 0: opTimeout
	mu      sync.Mutex
	idle    []*wireConn
}

type wireConn struct {
	c   net.Conn
	r   *bufio.Reader
	req []byte // the request being written
	buf []byte // the last response's body
}

// wireResponse is one response: its status and body. The body is valid
// until the connection serves another request, so do decodes it before
// handing the connection back.
type wireResponse struct {
	status int
	reason string
	body   []byte
}

// do sends one request and hands the response to read.
func (w *wire) do(ctx context.Context, method, path string, header [][2]string, body []byte, read func(wireResponse) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	timeout := w.timeout
	if timeout <= 0 {
		timeout = opTimeout
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	resp, wc, keep, err := w.roundTrip(ctx, deadline, method, path, header, body)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Counted as a time-out, like net/http's client's.
			err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	err = read(resp)
	if keep {
		w.put(wc)
	} else {
		wc.c.Close()
	}
	return err
}

// roundTrip sends the request on an idle connection or a new one and reads
// the response; on an error the connection is closed.
func (w *wire) roundTrip(ctx context.Context, deadline time.Time, method, path string, header [][2]string, body []byte) (wireResponse, *wireConn, bool, error) {
	wc, reused, err := w.conn(ctx)
	if err != nil {
		return wireResponse{}, nil, false, err
	}
	resp, keep, err := wc.exchange(ctx, deadline, w.host, method, path, header, body)
	if err != nil && reused && errors.Is(err, errStale) {
		// The server closed a connection that sat idle (its idle timeout, a
		// proxy's) before it read the request: send it on a new one. What
		// the load generator sends may arrive twice: its writes carry an
		// idempotency key, and creating an account that exists or asking
		// for a quote changes nothing.
		wc.c.Close()
		if wc, _, err = w.dial(ctx); err != nil {
			return wireResponse{}, nil, false, err
		}
		resp, keep, err = wc.exchange(ctx, deadline, w.host, method, path, header, body)
	}
	if err != nil {
		wc.c.Close()
		return wireResponse{}, nil, false, err
	}
	return resp, wc, keep, nil
}

// conn returns an idle connection (reused) or a new one.
func (w *wire) conn(ctx context.Context) (wc *wireConn, reused bool, err error) {
	w.mu.Lock()
	if n := len(w.idle); n > 0 {
		wc := w.idle[n-1]
		w.idle = w.idle[:n-1]
		w.mu.Unlock()
		return wc, true, nil
	}
	w.mu.Unlock()
	return w.dial(ctx)
}

func (w *wire) dial(ctx context.Context) (*wireConn, bool, error) {
	d := net.Dialer{Timeout: opTimeout, KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, "tcp", w.addr)
	if err != nil {
		return nil, false, err
	}
	// The load generator shares the cores with the server it measures:
	// raw reads and writes leave it more of them (internal/rawconn).
	c = rawconn.Wrap(c)
	return &wireConn{c: c, r: bufio.NewReaderSize(c, 16<<10)}, false, nil
}

func (w *wire) put(wc *wireConn) {
	w.mu.Lock()
	w.idle = append(w.idle, wc)
	w.mu.Unlock()
}

func (w *wire) close() {
	w.mu.Lock()
	for _, wc := range w.idle {
		wc.c.Close()
	}
	w.idle = nil
	w.mu.Unlock()
}

var (
	errMalformed = errors.New("malformed response")
	// errStale marks a connection that failed before the server answered
	// anything: the request was not read.
	errStale = errors.New("connection closed before the response")
)

// exchange writes a request and reads its response, until the deadline or
// the end of ctx; keep reports whether the connection may carry another
// request.
func (wc *wireConn) exchange(ctx context.Context, deadline time.Time, host, method, path string, header [][2]string, body []byte) (resp wireResponse, keep bool, err error) {
	if err := wc.c.SetDeadline(deadline); err != nil {
		return resp, false, err
	}
	if ctx.Done() != nil {
		// A cancelled run does not wait for the answers in flight.
		stop := context.AfterFunc(ctx, func() { wc.c.SetDeadline(time.Unix(1, 0)) })
		defer func() {
			if !stop() {
				keep = false // the deadline may move under the next request
			}
		}()
	}
	b := append(wc.req[:0], method...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	for _, h := range header {
		b = append(b, h[0]...)
		b = append(b, ": "...)
		b = append(b, h[1]...)
		b = append(b, "\r\n"...)
	}
	if body != nil || method == "POST" {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, body...)
	wc.req = b
	if _, err := wc.c.Write(b); err != nil {
		if isClosed(err) {
			err = fmt.Errorf("%w: %w", errStale, err)
		}
		return resp, false, err
	}

	first := true
	for {
		line, err := wc.line()
		if err != nil {
			if first && isClosed(err) && len(line) == 0 {
				err = fmt.Errorf("%w: %w", errStale, err)
			}
			return resp, false, err
		}
		first = false
		if resp, keep, err = wc.response(method, line); err != nil || resp.status >= 200 {
			return resp, keep, err
		}
		// 1xx: an interim response (100 Continue, 103 Early Hints); the
		// final one follows.
		if resp.status == 101 {
			return resp, false, errors.New("the server switched protocols")
		}
	}
}

// response reads a response's headers and body after its status line.
func (wc *wireConn) response(method string, line []byte) (resp wireResponse, keep bool, err error) {
	// HTTP/1.1 200 OK
	proto, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok || !bytes.HasPrefix(proto, []byte("HTTP/1.")) || len(rest) < 3 {
		return resp, false, errMalformed
	}
	code, err := strconv.ParseUint(string(rest[:3]), 10, 16)
	if err != nil || (len(rest) > 3 && rest[3] != ' ') {
		return resp, false, errMalformed
	}
	resp.status = int(code)
	resp.reason = string(bytes.TrimSpace(rest))
	keep = string(proto) == "HTTP/1.1"
	length, chunked := int64(-1), false
	for {
		line, err := wc.line()
		if err != nil {
			return resp, false, err
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return resp, false, errMalformed
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			// ParseUint takes digits alone: no sign, no spaces.
			n, err := strconv.ParseUint(string(value), 10, 62)
			if err != nil || (length >= 0 && int64(n) != length) {
				return resp, false, errMalformed
			}
			length = int64(n)
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
			if !chunked {
				return resp, false, fmt.Errorf("transfer encoding %q", value)
			}
		case bytes.EqualFold(name, []byte("Connection")):
			for tok := range bytes.SplitSeq(value, []byte{','}) {
				if bytes.EqualFold(bytes.TrimSpace(tok), []byte("close")) {
					keep = false
				}
			}
		}
	}
	switch code := resp.status; {
	case method == "HEAD" || code == 204 || code == 304 || code < 200:
		wc.buf = wc.buf[:0]
	case chunked:
		err = wc.readChunked()
	case length >= 0:
		err = wc.readN(length)
	default: // the body runs to the end of the connection
		wc.buf, err = io.ReadAll(io.LimitReader(wc.r, responseBytesMax+1))
		if len(wc.buf) > responseBytesMax {
			err = fmt.Errorf("response over %d bytes", responseBytesMax)
		}
		keep = false
	}
	if err != nil {
		return resp, false, err
	}
	resp.body = wc.buf
	return resp, keep, nil
}

// line reads one header line without its CRLF. On an error it returns
// what it read of the line.
func (wc *wireConn) line() ([]byte, error) {
	line, err := wc.r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return line, errMalformed
		}
		return line, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

func (wc *wireConn) readN(n int64) error {
	if n > responseBytesMax {
		return fmt.Errorf("response of %d bytes; at most %d", n, responseBytesMax)
	}
	wc.buf = slices.Grow(wc.buf[:0], int(n))[:n]
	_, err := io.ReadFull(wc.r, wc.buf)
	return err
}

func (wc *wireConn) readChunked() error {
	wc.buf = wc.buf[:0]
	for {
		line, err := wc.line()
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(line, []byte{';'})
		u, err := strconv.ParseUint(string(bytes.TrimSpace(size)), 16, 62)
		if err != nil {
			return errMalformed
		}
		n := int64(u)
		if n == 0 {
			// Trailers, then the empty line.
			for {
				line, err := wc.line()
				if err != nil {
					return err
				}
				if len(line) == 0 {
					return nil
				}
			}
		}
		if n > responseBytesMax-int64(len(wc.buf)) {
			return fmt.Errorf("response over %d bytes", responseBytesMax)
		}
		start := len(wc.buf)
		wc.buf = slices.Grow(wc.buf, int(n))[:start+int(n)]
		if _, err := io.ReadFull(wc.r, wc.buf[start:]); err != nil {
			return err
		}
		if line, err := wc.line(); err != nil || len(line) != 0 {
			return errMalformed
		}
	}
}

// isClosed reports whether err says the peer closed the connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
