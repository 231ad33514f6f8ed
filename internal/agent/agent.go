package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/sigil-pki/sigil/internal/keys"
)

// ErrStopped means the agent stopped renewing a certificate for a reason
// only a human can fix (machine disabled, key-compromise revocation,
// expired certificate): `sigil agent status` says which.
var ErrStopped = errors.New("stopped renewing")

// Agent keeps the certificates of one machine.
type Agent struct {
	cfg *Config
	log *slog.Logger
	now func() time.Time

	client *Client
	roots  *x509.CertPool

	mu sync.Mutex // guards st and its file
	st *State
}

// New validates cfg and opens (creating) the state directory.
func New(cfg *Config, log *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the state directory: %w", err)
	}
	st, err := ReadState(cfg.StateDir)
	if err != nil {
		if _, serr := os.Stat(filepath.Join(cfg.StateDir, stateFile)); serr == nil {
			return nil, err
		}
		st = &State{Certificates: map[string]*CertState{}}
	}
	return &Agent{cfg: cfg, log: log, now: time.Now, st: st}, nil
}

// update changes one certificate's state and writes agent.json.
func (a *Agent) update(name string, fn func(cs *CertState)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cs := a.st.Certificates[name]
	if cs == nil {
		cs = &CertState{Name: name}
		a.st.Certificates[name] = cs
	}
	if fn != nil {
		fn(cs)
	}
	a.st.UpdatedAt = a.now().UTC()
	if err := writeState(a.cfg.StateDir, a.st); err != nil {
		a.log.Error("writing the agent state", "err", err)
	}
}

// pin loads the pinned root from the state directory, or fetches it from
// the server and checks it against --root-fingerprint on first start.
func (a *Agent) pin(ctx context.Context) error {
	root, err := loadRoot(a.cfg.StateDir)
	if err != nil {
		return err
	}
	var want []byte
	if a.cfg.RootFingerprint != "" {
		want, _ = ParseFingerprint(a.cfg.RootFingerprint)
	}
	if root != nil {
		sum := sha256.Sum256(root.Raw)
		if want != nil && !bytes.Equal(sum[:], want) {
			return fmt.Errorf("%w: the state directory pins root %x, but --root-fingerprint is %x", ErrFingerprint, sum, want)
		}
	} else {
		if want == nil {
			return errors.New("no pinned root yet: the first start needs --root-fingerprint (sigil ca fingerprint prints it)")
		}
		if root, err = FetchPinnedRoot(ctx, a.cfg.Server, want); err != nil {
			return err
		}
		if err := keys.WriteFileAtomic(filepath.Join(a.cfg.StateDir, rootFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), 0o644); err != nil {
			return err
		}
		a.log.Info("pinned the server's root", "fingerprint", fmt.Sprintf("%x", sha256.Sum256(root.Raw)))
	}
	a.roots = x509.NewCertPool()
	a.roots.AddCert(root)
	a.client = &Client{Server: a.cfg.Server, Roots: a.roots}
	a.mu.Lock()
	a.st.Server, a.st.RootFingerprint, a.st.PID = a.cfg.Server, fmt.Sprintf("%x", sha256.Sum256(root.Raw)), os.Getpid()
	a.mu.Unlock()
	return nil
}

// Run keeps every configured certificate until ctx ends. With once, it
// enrols or renews what is due and returns; any failure is an error. Without
// once, it returns when ctx ends, or with ErrStopped once every certificate
// has stopped.
func (a *Agent) Run(ctx context.Context, once bool) error {
	for n := 0; ; n++ {
		err := a.pin(ctx)
		if err == nil {
			break
		}
		if once || errors.Is(err, ErrFingerprint) || !isNetwork(err) {
			return err
		}
		d := Backoff(n, time.Hour, uniform())
		a.log.Warn("cannot reach the server to pin its root; retrying", "err", err, "retry_in", d.Round(time.Second))
		if !sleep(ctx, d) {
			return nil
		}
	}
	errs := make([]error, len(a.cfg.Certificates))
	var wg sync.WaitGroup
	for i := range a.cfg.Certificates {
		cc := &a.cfg.Certificates[i]
		a.update(cc.Name, func(cs *CertState) {
			cs.Cert, cs.Key, cs.Chain, cs.FullChain = cc.Cert, cc.Key, cc.Chain, cc.FullChain
		})
		wg.Go(func() {
			w := &worker{a: a, cc: cc}
			w.own, _ = LookupOwnership(cc.Owner, cc.Group) // checked by Validate
			if err := w.run(ctx, once); err != nil {
				errs[i] = fmt.Errorf("%s: %w", cc.Name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// isNetwork reports a server that could not be reached (worth retrying),
// as opposed to a configuration problem.
func isNetwork(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// worker keeps one certificate.
type worker struct {
	a   *Agent
	cc  *CertConfig
	own Ownership

	id        *identity
	next      time.Time // renewal due (or retry after a failure)
	failures  int
	lastCheck time.Time
	checkErr  error     // the last status check's failure, if it failed
	revoked   bool      // the current certificate is known revoked: renewals re-key
	hookRetry time.Time // zero: no hook pending
	hookFails int
}

func (w *worker) log() *slog.Logger { return w.a.log.With("name", w.cc.Name) }

func (w *worker) lifetime() time.Duration {
	return w.id.leaf.NotAfter.Sub(w.id.leaf.NotBefore)
}

func (w *worker) schedule() {
	w.next = RenewAt(w.id.leaf.NotBefore, w.id.leaf.NotAfter, w.a.cfg.RenewAt, *w.a.cfg.Jitter, uniform())
	w.failures = 0
}

func (w *worker) run(ctx context.Context, once bool) error {
	var err error
	if w.id, err = loadIdentity(w.a.cfg.StateDir, w.cc.Name); err != nil {
		return err
	}
	now := w.a.now()
	if w.id != nil && !now.Before(w.id.leaf.NotAfter) {
		if w.cc.JoinToken == "" {
			return w.stop(fmt.Sprintf("the certificate expired at %s: enrol again with a new join token", w.id.leaf.NotAfter.Format(time.RFC3339)))
		}
		w.log().Warn("the stored certificate has expired; enrolling again with the join token")
		w.id = nil
	}
	w.a.mu.Lock()
	stopped := w.a.st.Certificates[w.cc.Name].Stopped
	w.a.mu.Unlock()
	if w.id != nil && stopped != "" && w.cc.JoinToken != "" {
		// A new join token is the way back after a stop (disabled machine,
		// key compromise): enrol afresh.
		w.log().Warn("enrolling again with the join token", "stopped_because", stopped)
		w.id = nil
	}
	if w.id == nil {
		if err := w.enrollLoop(ctx, once); err != nil {
			return err
		}
	} else {
		w.a.mu.Lock()
		pending := w.a.st.Certificates[w.cc.Name].HookPending
		w.a.mu.Unlock()
		if pending || w.deployedDiffers() {
			if err := w.deployAndHook(ctx); err != nil && once {
				return err
			}
		}
		w.schedule()
		w.a.update(w.cc.Name, func(cs *CertState) { cs.NextRenewal = w.next; cs.Stopped = "" })
	}
	if once {
		return w.once(ctx)
	}
	return w.loop(ctx)
}

// deployedDiffers reports deployed files missing or holding another certificate.
func (w *worker) deployedDiffers() bool {
	for _, p := range []string{w.cc.Cert, w.cc.FullChain} {
		if p == "" {
			continue
		}
		if b, err := os.ReadFile(p); err != nil || !bytes.Contains(b, w.id.cert) {
			return true
		}
	}
	return false
}

func (w *worker) enrollLoop(ctx context.Context, once bool) error {
	if w.cc.JoinToken == "" {
		return w.stop("not enrolled and no join token: create one with sigil join-token create and pass --join-token")
	}
	for n := 0; ; n++ {
		err := w.enroll(ctx)
		if err == nil {
			return nil
		}
		w.recordError(err)
		if once || IsPermanent(err) {
			return err
		}
		d := Backoff(n, time.Hour, uniform())
		w.log().Warn("enrolment failed; retrying", "err", err, "retry_in", d.Round(time.Second))
		if !sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

func (w *worker) enroll(ctx context.Context) error {
	key, err := keys.GenerateKey(w.cc.KeyType)
	if err != nil {
		return err
	}
	csr, err := NewCSR(key, w.cc.names())
	if err != nil {
		return err
	}
	out, err := w.a.client.Enroll(ctx, w.cc.JoinToken, csr)
	if err != nil {
		return fmt.Errorf("enrolment refused: %w", err)
	}
	if err := w.install(ctx, key, out, false); err != nil && !w.holds(out) {
		return err
	} // else a failed deployment or hook is retried; the token is spent
	w.log().Info("enrolled", "serial", out.Serial, "not_after", out.NotAfter)
	return nil
}

// install stores and deploys a newly issued certificate, then runs the hook.
// A failing hook does not undo anything: the new certificate is kept and
// the hook retried.
func (w *worker) install(ctx context.Context, k crypto.Signer, out *Issued, rekey bool) error {
	leaf, err := CheckIssued(out, k, w.a.roots)
	if err != nil {
		return err
	}
	id := &identity{key: k, leaf: leaf, cert: []byte(out.Certificate), chain: []byte(out.Chain)}
	if err := saveIdentity(w.a.cfg.StateDir, w.cc.Name, id); err != nil {
		return fmt.Errorf("saving the new certificate: %w", err)
	}
	first := w.id == nil
	w.id, w.revoked = id, false
	w.schedule()
	now := w.a.now().UTC()
	w.a.update(w.cc.Name, func(cs *CertState) {
		cs.Serial, cs.NotBefore, cs.NotAfter, cs.NextRenewal = out.Serial, leaf.NotBefore, leaf.NotAfter, w.next
		cs.CertStatus, cs.MachineState, cs.Stopped = "issued", "active", ""
		cs.LastError, cs.LastErrorAt = "", time.Time{}
		cs.HookPending = true // until deployAndHook below completes
		if !first {
			cs.LastRenewal = now
			cs.Renewals++
			if rekey {
				cs.Rekeys++
			}
		}
	})
	return w.deployAndHook(ctx)
}

// holds reports whether the issued certificate became the current one
// (install got past storing it).
func (w *worker) holds(out *Issued) bool {
	return w.id != nil && w.id.leaf.SerialNumber.Text(16) == out.Serial
}

func (w *worker) deployAndHook(ctx context.Context) error {
	if err := deploy(w.cc, w.id, w.own); err != nil {
		w.recordError(err)
		w.hookRetry = w.a.now().Add(Backoff(w.hookFails, w.lifetime(), uniform()))
		w.hookFails++
		return err
	}
	w.a.update(w.cc.Name, func(cs *CertState) { cs.HookPending = true })
	return w.hook(ctx)
}

func (w *worker) hook(ctx context.Context) error {
	if err := runHook(ctx, w.cc, w.id); err != nil {
		d := Backoff(w.hookFails, w.lifetime(), uniform())
		w.hookFails++
		w.hookRetry = w.a.now().Add(d)
		w.log().Error("the on-change hook failed; the new certificate is in place, retrying the hook", "err", err, "retry_in", d.Round(time.Second))
		w.a.update(w.cc.Name, func(cs *CertState) { cs.HookPending, cs.HookError = true, err.Error() })
		return err
	}
	w.hookRetry, w.hookFails = time.Time{}, 0
	w.a.update(w.cc.Name, func(cs *CertState) { cs.HookPending, cs.HookError = false, "" })
	return nil
}

func (w *worker) recordError(err error) {
	now := w.a.now().UTC()
	w.a.update(w.cc.Name, func(cs *CertState) { cs.LastError, cs.LastErrorAt = err.Error(), now })
}

func (w *worker) stop(why string) error {
	w.log().Error("stopped renewing", "reason", why)
	w.a.update(w.cc.Name, func(cs *CertState) { cs.Stopped = why })
	return fmt.Errorf("%w: %s", ErrStopped, why)
}

// renew replaces the certificate, authenticated by the current one. After a
// revocation (w.revoked, set by check or its OCSP fallback, and kept until
// a replacement is installed so that a failed re-key's retry is a re-key
// too) it always takes a new key.
func (w *worker) renew(ctx context.Context) error {
	rekey := w.revoked
	key := w.id.key
	if !w.cc.ReuseKey || rekey {
		k, err := keys.GenerateKey(w.cc.KeyType)
		if err != nil {
			return err
		}
		key = k
	}
	csr, err := NewCSR(key, w.cc.names())
	if err != nil {
		return err
	}
	out, err := w.a.client.Renew(ctx, w.id.tlsCert(), csr)
	if err != nil {
		return fmt.Errorf("renewal failed: %w", err)
	}
	if err := w.install(ctx, key, out, rekey); err != nil && !w.holds(out) {
		return err
	} // else a failed deployment or hook is retried; the new certificate is kept
	w.log().Info("renewed", "serial", out.Serial, "not_after", out.NotAfter, "rekey_after_revocation", rekey)
	return nil
}

// failed schedules a retry and says clearly how long the current
// certificate still has.
func (w *worker) failed(err error) {
	d := Backoff(w.failures, w.lifetime(), uniform())
	w.failures++
	w.next = w.a.now().Add(d)
	left := time.Until(w.id.leaf.NotAfter).Round(time.Second)
	w.log().Warn("renewal failed; keeping the current certificate", "err", err, "expires_in", left, "retry_in", d.Round(time.Millisecond))
	w.recordError(fmt.Errorf("%w (certificate expires in %s)", err, left))
	w.a.update(w.cc.Name, func(cs *CertState) { cs.NextRenewal = w.next })
}

// check asks the server about the certificate. It returns a non-nil error
// only when the worker must stop.
func (w *worker) check(ctx context.Context) (rekey bool, stop error) {
	w.lastCheck = w.a.now()
	st, err := w.a.client.Status(ctx, w.id.tlsCert())
	w.checkErr = err
	if err != nil {
		w.log().Debug("status check failed", "err", err)
		if !IsPermanent(err) {
			return w.checkOCSP(ctx), nil
		}
		return false, nil
	}
	w.a.update(w.cc.Name, func(cs *CertState) {
		cs.MachineState, cs.CertStatus, cs.LastCheck = st.MachineState, st.CertStatus, w.lastCheck.UTC()
		cs.StatusFrom = "server"
	})
	switch {
	case st.MachineState != "active":
		return false, w.stop(fmt.Sprintf("machine %s is %s on the server", st.Machine, st.MachineState))
	case st.CertStatus == "revoked" && st.RekeyAllowed:
		w.log().Warn("the certificate was revoked; re-keying now", "serial", st.Serial)
		w.revoked = true
		return true, nil
	case st.CertStatus == "revoked":
		return false, w.stop(fmt.Sprintf("certificate %s was revoked (%s) and may not re-key: enrol again with a new join token", st.Serial, st.RevocationReason))
	case st.CurrentSerial == "" || st.CurrentSerial == st.Serial || st.RenewAllowed == nil:
	case *st.RenewAllowed:
		// The server issued a certificate this agent never received (an
		// answer lost in transit): replace it now, before it is used.
		w.log().Warn("the server holds a newer certificate this agent never received; renewing now", "serial", st.Serial, "server_current", st.CurrentSerial)
		return true, nil
	default:
		return false, w.stop(fmt.Sprintf("certificate %s was superseded by %s, which another holder of this machine's identity obtained (a cloned machine or a copied state directory?), and may not renew: enrol again with a new join token", st.Serial, st.CurrentSerial))
	}
	return false, nil
}

// checkOCSP is the fallback of check while the status endpoint cannot be
// reached: a revocation the responder signs is noticed at once and a
// re-key is attempted (and retried with the renewal backoff) until the
// server answers, which then has the last word (it refuses a re-key after
// key compromise or on a disabled machine, and check stops the worker).
func (w *worker) checkOCSP(ctx context.Context) (rekey bool) {
	issuer, err := firstCert(w.id.chain)
	if err == nil {
		var r *ocsp.Response
		if r, err = OCSPStatus(ctx, w.id.leaf, issuer); err == nil {
			now := w.a.now().UTC()
			revoked := r.Status == ocsp.Revoked
			w.a.update(w.cc.Name, func(cs *CertState) {
				cs.LastOCSPCheck = now
				if revoked {
					cs.CertStatus, cs.StatusFrom = "revoked", "ocsp"
				}
			})
			if revoked {
				w.log().Warn("the status endpoint is unreachable, but the OCSP responder says the certificate is revoked; re-keying",
					"serial", w.id.leaf.SerialNumber.Text(16), "revoked_at", r.RevokedAt, "reason", r.RevocationReason)
			}
			w.revoked = w.revoked || revoked
			return revoked && r.RevocationReason != ocsp.KeyCompromise
		}
	}
	w.log().Debug("OCSP check failed", "err", err)
	return false
}

func (w *worker) loop(ctx context.Context) error {
	for {
		wake := w.next
		if c := w.lastCheck.Add(w.a.cfg.CheckInterval); c.Before(wake) {
			wake = c
		}
		if !w.hookRetry.IsZero() && w.hookRetry.Before(wake) {
			wake = w.hookRetry
		}
		if !sleep(ctx, time.Until(wake)) {
			return nil
		}
		now := w.a.now()
		if !w.hookRetry.IsZero() && !now.Before(w.hookRetry) {
			// Deploy again too: the failure may have been writing the files.
			_ = w.deployAndHook(ctx)
		}
		rekey := false
		if !now.Before(w.lastCheck.Add(w.a.cfg.CheckInterval)) {
			var stop error
			if rekey, stop = w.check(ctx); stop != nil {
				return stop
			}
		}
		if rekey || !now.Before(w.next) {
			if err := w.renew(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if !now.Before(w.id.leaf.NotAfter) {
					return w.stop(fmt.Sprintf("the certificate expired at %s before it could be renewed (%v): enrol again with a new join token", w.id.leaf.NotAfter.Format(time.RFC3339), err))
				}
				w.failed(err)
				if IsPermanent(err) {
					w.lastCheck = time.Time{} // ask the server why at once
				}
			}
		}
	}
}

// once renews if due (or revoked), retries a pending hook, and returns.
func (w *worker) once(ctx context.Context) error {
	rekey, stop := w.check(ctx)
	if stop != nil {
		return stop
	}
	if rekey || !w.a.now().Before(w.next) {
		if err := w.renew(ctx); err != nil {
			w.recordError(err)
			return err
		}
	} else if w.checkErr != nil {
		err := fmt.Errorf("status check failed: %w", w.checkErr)
		w.recordError(err)
		return err
	}
	if !w.hookRetry.IsZero() {
		return w.deployAndHook(ctx)
	}
	return nil
}
