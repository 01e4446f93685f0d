// Package rawconn gives stream sockets reads and writes that keep their
// goroutine's processor for the system call.
//
// Go's net package makes each read and write of a socket a system call
// that may block: the processor is marked as in a system call, and the
// runtime's monitor thread, which polls every 20 µs while it finds such
// calls to take over, hands a processor still in its call at the next poll
// to another thread, which the caller must then wait to get back. A
// socket's descriptor is non-blocking, so its reads and writes never wait:
// they return EAGAIN, and the goroutine waits in the network poller
// instead. On two vCPUs under a hypervisor a write on the loopback, which
// runs the peer's receive path too, takes long enough that the monitor
// kept polling at its fastest: it was a tenth of the CPU samples of `scrip
// serve` over HTTP on PostgreSQL (docs/performance.md, "Per step", item
// 34). Raw system calls skip that accounting, as a call that cannot block
// should.
//
// The price of a raw call is that its goroutine cannot be stopped during
// it, so a stop of the world waits for it; a call copies at most
// callBytesMax bytes to bound that wait. Deadlines, Close and the poller's
// waits are the net package's own: only the read and write calls
// themselves change. Builds with the race detector or a sanitizer keep the
// net package's calls, whose hooks they need (Enabled).
package rawconn

import (
	"context"
	"net"
)

// callBytesMax bounds the bytes one raw read or write copies, and with it
// the time a stop of the world may wait for the call.
const callBytesMax = 64 << 10

// Listen returns l with each accepted connection wrapped by Wrap.
func Listen(l net.Listener) net.Listener { return listener{l} }

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}

// Dial returns dial with each connection it opens wrapped by Wrap. dial is
// any function of net.Dialer.DialContext's form, as pgconn.DialFunc.
func Dial[F ~func(ctx context.Context, network, addr string) (net.Conn, error)](dial F) F {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return Wrap(c), nil
	}
}
