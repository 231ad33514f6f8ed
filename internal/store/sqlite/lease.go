package sqlite

import (
	"context"
	"path/filepath"
	"sync"

	"github.com/sigil-pki/sigil/internal/store"
)

// A SQLite file is served by one process (docs/architecture.md: several
// servers need PostgreSQL), so a lease only has to exclude other holders in
// this process: a semaphore per (database file, name). Keying by the file
// rather than the Store keeps two Stores opened on one file in one process
// (tests) from both leading.
var (
	leaseMu  sync.Mutex
	leaseSem = map[leaseKey]chan struct{}{}
)

type leaseKey struct{ path, name string }

var _ store.Leaser = (*Store)(nil)

// Lead blocks until this process holds the named lease on this database
// file or ctx ends. The lease is only lost by Release.
func (s *Store) Lead(ctx context.Context, name string) (store.Lease, error) {
	path := s.path
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	k := leaseKey{path, name}
	leaseMu.Lock()
	sem, ok := leaseSem[k]
	if !ok {
		sem = make(chan struct{}, 1)
		leaseSem[k] = sem
	}
	leaseMu.Unlock()
	select {
	case sem <- struct{}{}:
		return &lease{sem: sem, lost: make(chan struct{})}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type lease struct {
	sem  chan struct{}
	lost chan struct{}
	once sync.Once
}

func (l *lease) Lost() <-chan struct{} { return l.lost }

func (l *lease) Release() {
	l.once.Do(func() {
		close(l.lost)
		<-l.sem
	})
}
