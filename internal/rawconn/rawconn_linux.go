//go:build linux && !race && !msan && !asan

package rawconn

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Wrap returns c with raw reads and writes when it is a TCP or Unix stream
// connection, and c itself otherwise. The result keeps the connection's
// other methods (CloseWrite, SetKeepAlive, ...).
func Wrap(c net.Conn) net.Conn {
	switch c := c.(type) {
	case *net.TCPConn:
		if rc, err := c.SyscallConn(); err == nil {
			return &tcpConn{TCPConn: c, raw: raw{rc: rc, conn: c, network: "tcp"}}
		}
	case *net.UnixConn:
		// Only a stream: a write of a datagram must not be split.
		if a := c.LocalAddr(); a == nil || a.Network() != "unix" {
			return c
		}
		if rc, err := c.SyscallConn(); err == nil {
			return &unixConn{UnixConn: c, raw: raw{rc: rc, conn: c, network: "unix"}}
		}
	}
	return c
}

type tcpConn struct {
	*net.TCPConn
	raw
}

func (c *tcpConn) Read(p []byte) (int, error)  { return c.raw.read(p) }
func (c *tcpConn) Write(p []byte) (int, error) { return c.raw.write(p) }

type unixConn struct {
	*net.UnixConn
	raw
}

func (c *unixConn) Read(p []byte) (int, error)  { return c.raw.read(p) }
func (c *unixConn) Write(p []byte) (int, error) { return c.raw.write(p) }

// raw reads and writes a connection's descriptor with raw system calls,
// inside the net package's RawConn, which holds the descriptor's read or
// write lock and waits in the poller while the call returns EAGAIN.
type raw struct {
	rc      syscall.RawConn
	conn    net.Conn // for an empty read, and the addresses of errors
	network string
}

// Enabled reports whether Wrap makes raw calls in this build.
const Enabled = true

func (r raw) read(p []byte) (int, error) {
	if len(p) == 0 {
		return r.conn.Read(p) // the net package's answer: nil, or that it is closed
	}
	var n int
	var errno syscall.Errno
	err := r.rc.Read(func(fd uintptr) bool {
		n, errno = call(syscall.SYS_READ, fd, p[:min(len(p), callBytesMax)])
		return errno != syscall.EAGAIN
	})
	switch {
	case err != nil:
		return 0, r.opError("read", err)
	case errno != 0:
		return 0, r.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (r raw) write(p []byte) (int, error) {
	var n int
	var errno syscall.Errno
	var short bool
	err := r.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			var put int
			put, errno = call(syscall.SYS_WRITE, fd, p[n:min(len(p), n+callBytesMax)])
			if errno != 0 {
				return errno != syscall.EAGAIN
			}
			if put == 0 {
				short = true // as the net package, never to loop on it
				return true
			}
			n += put
		}
		return true
	})
	switch {
	case err != nil:
		return n, r.opError("write", err)
	case errno != 0:
		return n, r.opError("write", errno)
	case short:
		return n, r.opError("write", io.ErrUnexpectedEOF)
	}
	return n, nil
}

// call makes one raw read or write of p on fd, made again while a signal
// interrupts it. It returns EAGAIN when the socket has nothing to read or
// no room to write.
func call(trap, fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}

// opError gives an error the form of the net package's, so that callers
// that look for a timeout or a closed connection find it.
func (r raw) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		// The RawConn's own: a deadline or a closed connection.
		err = oe.Err
	}
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(op, errno)
	}
	return &net.OpError{Op: op, Net: r.network, Source: r.conn.LocalAddr(), Addr: r.conn.RemoteAddr(), Err: err}
}
