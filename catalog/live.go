package catalog

import (
	"sync/atomic"
)

// Live holds the catalog a running server prices with. Reload swaps in a new
// file only when it validates whole: a broken catalog never replaces a
// working one.
type Live struct {
	path string
	cur  atomic.Pointer[Catalog]
}

// NewLive loads path; it fails if the first load fails.
func NewLive(path string) (*Live, error) {
	c, err := Load(path)
	if err != nil {
		return nil, err
	}
	l := &Live{path: path}
	l.cur.Store(c)
	return l, nil
}

// NewLiveFrom serves an already loaded catalog, reloading from path.
func NewLiveFrom(c *Catalog, path string) *Live {
	l := &Live{path: path}
	l.cur.Store(c)
	return l
}

// Catalog returns the current catalog.
func (l *Live) Catalog() *Catalog { return l.cur.Load() }

// Reload reads the file again. On error the current catalog stays in place
// and the error lists the file's problems; changed reports a new version.
func (l *Live) Reload() (changed bool, err error) {
	c, err := Load(l.path)
	if err != nil {
		return false, err
	}
	old := l.cur.Load()
	if old != nil && old.Version == c.Version {
		return false, nil
	}
	l.cur.Store(c)
	return true, nil
}
