package siem

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sigil-pki/sigil/internal/store"
)

// Shipping defaults.
const (
	DefaultPoll      = 500 * time.Millisecond
	DefaultHeartbeat = 5 * time.Second
	// DefaultMaxAge is how old a required sink's last report may be before
	// the gate treats the sink as down (no server is shipping to it).
	DefaultMaxAge = 15 * time.Second
	batchSize     = 500
)

// Shipper tails the audit log by sequence number and writes each event, after
// it committed, to every sink. Positions are kept in the store (one row per
// sink), so that the server that takes over the background lease resumes
// where the previous one stopped: delivery is at least once (a failover can
// resend the events of the last batch), in order, and never skips an event.
//
// A sink seen for the first time starts at the current head of the log:
// history is exported with `sigil audit export`, not replayed into a SIEM.
type Shipper struct {
	Store     store.Store
	Sinks     []*Sink
	Log       *slog.Logger
	Now       func() time.Time
	Poll      time.Duration // default DefaultPoll
	Heartbeat time.Duration // default DefaultHeartbeat
}

type cursor struct {
	seq      int64
	lastErr  string
	reported time.Time // when the state was last stored
}

// Run ships until ctx ends. It returns ctx's error.
func (sh *Shipper) Run(ctx context.Context) error {
	defer func() {
		for _, s := range sh.Sinks {
			s.Close()
		}
	}()
	poll, beat := sh.Poll, sh.Heartbeat
	if poll <= 0 {
		poll = DefaultPoll
	}
	if beat <= 0 {
		beat = DefaultHeartbeat
	}
	now := sh.Now
	if now == nil {
		now = time.Now
	}
	cursors, err := sh.load(ctx)
	for err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		sh.Log.Error("audit sinks: reading positions", "err", err)
		sleep(ctx, time.Second)
		cursors, err = sh.load(ctx)
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		for _, s := range sh.Sinks {
			sh.shipOne(ctx, s, cursors[s.Name()], now, beat)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// load reads stored positions; sinks without one start at the head.
func (sh *Shipper) load(ctx context.Context) (map[string]*cursor, error) {
	states, err := sh.Store.ListAuditSinkStates(ctx)
	if err != nil {
		return nil, err
	}
	head, _, err := sh.Store.AuditHead(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]*cursor{}
	for _, s := range sh.Sinks {
		out[s.Name()] = &cursor{seq: head}
	}
	for _, st := range states {
		if c, ok := out[st.Sink]; ok {
			c.seq = st.Seq
		}
	}
	return out, nil
}

// shipOne sends every event after the cursor, batch by batch, and stores
// the new position and the sink's health.
func (sh *Shipper) shipOne(ctx context.Context, s *Sink, c *cursor, now func() time.Time, beat time.Duration) {
	for ctx.Err() == nil {
		evs, err := sh.Store.ListAudit(ctx, store.AuditFilter{AfterSeq: c.seq, Limit: batchSize})
		if err != nil {
			if ctx.Err() == nil {
				sh.Log.Error("audit sinks: reading the audit log", "err", err)
			}
			return
		}
		errMsg := ""
		if len(evs) > 0 {
			n, err := s.Send(ctx, evs)
			if n > 0 {
				c.seq = evs[n-1].Seq
			}
			if err != nil {
				errMsg = err.Error()
			}
		} else if err := s.Check(ctx); err != nil {
			errMsg = err.Error()
		}
		changed := errMsg != c.lastErr || len(evs) > 0
		if errMsg != "" && c.lastErr == "" {
			sh.Log.Error("audit sink failed", "sink", s.Name(), "err", errMsg)
		} else if errMsg == "" && c.lastErr != "" {
			sh.Log.Info("audit sink recovered", "sink", s.Name())
		}
		c.lastErr = errMsg
		t := now()
		if changed || t.Sub(c.reported) >= beat {
			st := &store.AuditSinkState{Sink: s.Name(), Seq: c.seq, LastError: errMsg, UpdatedAt: t}
			if err := sh.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.PutAuditSinkState(ctx, st) }); err != nil {
				if ctx.Err() == nil {
					sh.Log.Error("audit sinks: storing position", "sink", s.Name(), "err", err)
				}
				return
			}
			c.reported = t
		}
		if errMsg != "" || len(evs) < batchSize {
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// SinkStateReader is what the Gate reads.
type SinkStateReader interface {
	ListAuditSinkStates(ctx context.Context) ([]*store.AuditSinkState, error)
}

// Gate decides whether state-changing requests may proceed when some sinks
// are required: it refuses while a required sink's last write failed, or
// while no server has reported on it for MaxAge (nobody is shipping). It
// reads the shared store, so every replica agrees, and caches the answer
// for a second.
type Gate struct {
	Store    SinkStateReader
	Required []string // sink names (Sink.Name)
	Now      func() time.Time
	MaxAge   time.Duration // default DefaultMaxAge

	mu      sync.Mutex
	checked time.Time
	last    error
}

// Check returns nil when every required sink is being written, else an
// error naming the first that is not.
func (g *Gate) Check(ctx context.Context) error {
	if len(g.Required) == 0 {
		return nil
	}
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	t := now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.checked.IsZero() && t.Sub(g.checked) < time.Second && t.After(g.checked) {
		return g.last
	}
	g.last = g.check(ctx, t)
	g.checked = t
	return g.last
}

func (g *Gate) check(ctx context.Context, now time.Time) error {
	maxAge := g.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	states, err := g.Store.ListAuditSinkStates(ctx)
	if err != nil {
		return fmt.Errorf("required audit sink: reading its state: %w", err)
	}
	by := map[string]*store.AuditSinkState{}
	for _, st := range states {
		by[st.Sink] = st
	}
	for _, name := range g.Required {
		st := by[name]
		switch {
		case st == nil:
			return fmt.Errorf("required audit sink %s has not been written yet", name)
		case st.LastError != "":
			return fmt.Errorf("required audit sink %s is failing: %s", name, st.LastError)
		case now.Sub(st.UpdatedAt) > maxAge:
			return fmt.Errorf("required audit sink %s: no report for %s (is a server holding the background lease?)", name, now.Sub(st.UpdatedAt).Round(time.Second))
		}
	}
	return nil
}
