package server

import (
	"context"
	"time"

	"github.com/sigil-pki/sigil/internal/store"
)

// backgroundLease names the lease under which cluster-wide jobs run.
const backgroundLease = "background-jobs"

// defaultBackgroundInterval is Config.BackgroundInterval's default.
const defaultBackgroundInterval = time.Minute

func (s *Server) backgroundInterval() time.Duration {
	if s.cfg.BackgroundInterval > 0 {
		return s.cfg.BackgroundInterval
	}
	return defaultBackgroundInterval
}

// runTasks runs the background work until ctx ends: the cluster-wide jobs
// on whichever server holds the background-job lease (leadJobs), and the
// renewal of this server's own TLS certificate on every server.
func (s *Server) runTasks(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.leadJobs(ctx)
	}()
	defer func() { <-done }()
	t := time.NewTicker(s.backgroundInterval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if err := s.renewTLSIfDue(ctx, time.Now()); err != nil {
			s.log.Error("renewing the server's TLS certificate", "err", err)
		}
	}
}

// leadJobs waits for the background-job lease, runs the cluster-wide jobs
// while holding it and waits again when it is lost, until ctx ends. A store
// that cannot elect a leader (no store.Leaser) runs them unconditionally.
func (s *Server) leadJobs(ctx context.Context) {
	leaser, ok := s.store.(store.Leaser)
	if !ok {
		s.leader.Store(true)
		defer s.leader.Store(false)
		s.runJobs(ctx, nil)
		return
	}
	for ctx.Err() == nil {
		l, err := leaser.Lead(ctx, backgroundLease)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("waiting for the background-job lease", "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		s.leader.Store(true)
		s.log.Info("became background-job leader")
		s.runJobs(ctx, l.Lost())
		s.leader.Store(false)
		lost := ctx.Err() == nil
		l.Release()
		if lost {
			s.log.Warn("lost background-job leadership")
		}
	}
}

// runJobs runs the cluster-wide jobs at once and then every interval until
// ctx ends or lost is closed (a nil lost never closes).
func (s *Server) runJobs(ctx context.Context, lost <-chan struct{}) {
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if lost != nil {
		go func() {
			select {
			case <-lost:
				cancel()
			case <-jctx.Done():
			}
		}()
	}
	monDone := make(chan struct{})
	go func() { defer close(monDone); s.runMonitor(jctx) }() // monitor.go: findings, webhooks, audit sinks
	defer func() { cancel(); <-monDone }()
	t := time.NewTicker(s.backgroundInterval())
	defer t.Stop()
	for {
		s.runClusterJobs(jctx)
		select {
		case <-jctx.Done():
			return
		case <-t.C:
		}
	}
}

// runClusterJobs is one round of the jobs only one server should run.
func (s *Server) runClusterJobs(ctx context.Context) {
	s.runScheduledScans(ctx) // scans.go: starts due scans in the background
	for _, iss := range s.ra.CA().Issuers() {
		if ctx.Err() != nil {
			return
		}
		// CRL returns the stored CRL while it is fresh and republishes
		// once half its validity has passed.
		if _, err := s.ra.CRL(ctx, iss.ID); err != nil && ctx.Err() == nil {
			s.log.Error("refreshing CRL", "issuer", iss.ID, "err", err)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
