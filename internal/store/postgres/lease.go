package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sigil-pki/sigil/internal/store"
)

// Leases are session-level advisory locks
// pg_try_advisory_lock(leaseLockClass, hashtext(name)), each held on a
// dedicated connection (not a pooled one: the lock belongs to the session,
// and a pooled connection would carry it into unrelated work). PostgreSQL
// releases the lock when that session ends, so a holder killed with SIGKILL
// frees it as soon as its TCP connection closes; a holder cut off by the
// network frees it when the server notices (TCP keepalive). Unlike the rest
// of this package, leases need a real session: with a transaction-mode pooler
// (PgBouncer) in between, connect the servers directly or in session mode.
//
// Timing: a waiting process retries every leasePoll, so it takes over within
// about leasePoll of the holder's session ending. The holder pings its
// connection every leasePing (each ping bounded by leaseTimeout) and closes
// Lost on the first failure, so it notices a lost session within
// leasePing+leaseTimeout; during that window another process may already
// hold the lease (work under it must be idempotent).
const (
	leaseLockClass int32 = 0x5349_474c // "SIGL"; distinct from crlLockClass
	leasePoll            = time.Second
	leasePing            = time.Second
	leaseTimeout         = 2 * time.Second
)

var _ store.Leaser = (*Store)(nil)

// Lead blocks until this process holds the named lease or ctx ends.
func (s *Store) Lead(ctx context.Context, name string) (store.Lease, error) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil { // not handed to a lease
			closeConn(conn)
		}
	}()
	for {
		if conn == nil || conn.IsClosed() {
			cctx, cancel := context.WithTimeout(ctx, leaseTimeout+3*time.Second)
			c, err := pgx.ConnectConfig(cctx, s.pool.Config().ConnConfig.Copy())
			cancel()
			if err == nil {
				conn = c
			}
		}
		if conn != nil {
			var ok bool
			qctx, cancel := context.WithTimeout(ctx, leaseTimeout)
			err := conn.QueryRow(qctx, "SELECT pg_try_advisory_lock($1, hashtext($2))", leaseLockClass, name).Scan(&ok)
			cancel()
			switch {
			case err == nil && ok:
				if ctx.Err() != nil {
					return nil, ctx.Err() // the deferred close frees the lock
				}
				l := &lease{conn: conn, name: name, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
				conn = nil
				go l.watch()
				return l, nil
			case err != nil:
				closeConn(conn)
				conn = nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(leasePoll):
		}
	}
}

func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), leaseTimeout)
	defer cancel()
	_ = c.Close(ctx)
}

type lease struct {
	conn     *pgx.Conn
	name     string
	lost     chan struct{}
	lostOnce sync.Once
	stop     chan struct{} // closed by Release to end watch
	done     chan struct{} // closed when watch has returned
	relOnce  sync.Once
}

func (l *lease) Lost() <-chan struct{} { return l.lost }

func (l *lease) markLost() { l.lostOnce.Do(func() { close(l.lost) }) }

// watch pings the lease's connection until it fails or Release is called.
// It is the only user of conn until it returns.
func (l *lease) watch() {
	defer close(l.done)
	t := time.NewTicker(leasePing)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), leaseTimeout)
		err := l.conn.Ping(ctx)
		cancel()
		if err != nil {
			l.markLost()
			closeConn(l.conn) // make sure the session, and so the lock, is gone
			return
		}
	}
}

// Release unlocks and closes the dedicated connection. Closing alone would
// free the lock; the explicit unlock just makes it immediate on the server.
func (l *lease) Release() {
	l.relOnce.Do(func() {
		close(l.stop)
		<-l.done
		l.markLost()
		if !l.conn.IsClosed() {
			ctx, cancel := context.WithTimeout(context.Background(), leaseTimeout)
			_, _ = l.conn.Exec(ctx, "SELECT pg_advisory_unlock($1, hashtext($2))", leaseLockClass, l.name)
			cancel()
			closeConn(l.conn)
		}
	})
}
