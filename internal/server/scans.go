package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sigil-pki/sigil/internal/discovery"
	"github.com/sigil-pki/sigil/internal/inventory"
	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/store"
)

func init() {
	// A schedule is refused at creation if the scanner could not parse it.
	ra.ValidateScanTargets = func(targets []string, ports []int) error {
		_, err := discovery.ParseTargets(targets, ports, nil)
		return err
	}
}

// Scheduled scans default to a gentler concurrency than the CLI: the server
// has other work.
const scheduledScanConcurrency = 64

// runningScans holds the schedules being scanned by this process, so a slow
// scan is never started twice (keys: "<server pointer>/<name>").
var runningScans sync.Map

// runScheduledScans starts, in the background, every scheduled network scan
// that is due. It runs on the background-job leader only (runClusterJobs), so
// one replica scans at a time; a scan in progress when leadership is lost is
// cancelled and records what it found.
func (s *Server) runScheduledScans(ctx context.Context) {
	ss, err := s.store.ListScanSchedules(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("listing scan schedules", "err", err)
		}
		return
	}
	now := time.Now()
	for _, sc := range ss {
		if sc.NextRun.After(now) {
			continue
		}
		key := fmt.Sprintf("%p/%s", s, sc.Name)
		if _, busy := runningScans.LoadOrStore(key, true); busy {
			continue
		}
		go func() {
			defer runningScans.Delete(key)
			s.runScheduledScan(ctx, sc)
		}()
	}
}

func (s *Server) runScheduledScan(ctx context.Context, sc *store.ScanSchedule) {
	targets, err := discovery.ParseTargets(sc.Targets, sc.Ports, sc.SNI)
	// A run may not outlast its interval: the next one would overlap.
	sctx, cancel := context.WithTimeout(ctx, sc.Every)
	defer cancel()
	col := inventory.NewCollector()
	if err == nil {
		conc := sc.Concurrency
		if conc <= 0 {
			conc = scheduledScanConcurrency
		}
		s.log.Info("scheduled scan starting", "schedule", sc.Name, "endpoints", targets.Count())
		err = discovery.ScanNet(sctx, targets, discovery.NetOptions{Concurrency: conc, Timeout: sc.Timeout}, col)
	}
	rep := col.Report("net", "server")
	// Recorded even when cancelled: partial results are kept.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer rcancel()
	sum, rerr := s.ra.RecordScheduledScan(rctx, sc, rep, err)
	if rerr != nil {
		s.log.Error("recording scheduled scan", "schedule", sc.Name, "err", rerr)
		return
	}
	s.log.Info("scheduled scan done", "schedule", sc.Name, "identities", sum.Identities, "new", sum.NewIdentities,
		"errors", sum.Errors, "interrupted", err != nil)
}
