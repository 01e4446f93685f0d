//go:build !linux || race || msan || asan

package rawconn

import "net"

// Enabled reports whether Wrap makes raw calls in this build: on Linux
// only, and not under the race detector or a sanitizer, whose hooks in the
// syscall package's Read and Write a raw call would skip (the detector
// would then report a race between goroutines that pass data through a
// socket).
const Enabled = false

// Wrap returns c as it is.
func Wrap(c net.Conn) net.Conn { return c }
