package ra

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/auth"
	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/policy"
	"github.com/sigil-pki/sigil/internal/store"
)

// profileCache keeps compiled profiles (CEL programs are costly to build) and
// rereads the store after maxAge so that changes made by another replica are
// seen within that bound.
type profileCache struct {
	st     store.Reader
	maxAge time.Duration
	now    func() time.Time

	mu      sync.RWMutex
	entries map[string]cachedProfile
}

type cachedProfile struct {
	compiled *policy.Compiled
	doc      []byte
	loaded   time.Time
}

func newProfileCache(st store.Reader, maxAge time.Duration, now func() time.Time) *profileCache {
	return &profileCache{st: st, maxAge: maxAge, now: now, entries: map[string]cachedProfile{}}
}

func (pc *profileCache) get(ctx context.Context, name string) (*policy.Compiled, error) {
	pc.mu.RLock()
	e, ok := pc.entries[name]
	pc.mu.RUnlock()
	if ok && pc.now().Sub(e.loaded) < pc.maxAge {
		return e.compiled, nil
	}
	p, err := pc.st.GetProfile(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		pc.forget(name)
		return nil, fail.New(fail.NotFound, "profile %q does not exist", name)
	}
	if err != nil {
		return nil, storeErr(err, "profile")
	}
	if ok && bytes.Equal(e.doc, p.Doc) {
		e.loaded = pc.now()
	} else {
		var prof policy.Profile
		if err := json.Unmarshal(p.Doc, &prof); err != nil {
			return nil, fail.Wrap(fail.Internal, fmt.Errorf("stored profile %q: %w", name, err))
		}
		c, err := policy.Compile(prof)
		if err != nil {
			return nil, fail.Wrap(fail.Internal, fmt.Errorf("stored profile %q: %w", name, err))
		}
		e = cachedProfile{compiled: c, doc: p.Doc, loaded: pc.now()}
	}
	pc.mu.Lock()
	pc.entries[name] = e
	pc.mu.Unlock()
	return e.compiled, nil
}

func (pc *profileCache) forget(name string) {
	pc.mu.Lock()
	delete(pc.entries, name)
	pc.mu.Unlock()
}

// ProfileChange reports what applying a document did to one profile.
type ProfileChange struct {
	Name   string `json:"name"`
	Action string `json:"action"` // created, updated, unchanged
}

// ApplyProfiles validates a whole profile document and then creates or
// updates each profile, all in one transaction: a document with one bad
// profile changes nothing.
func (r *RA) ApplyProfiles(ctx context.Context, c Caller, doc *policy.Document) ([]ProfileChange, error) {
	if err := r.authorize(ctx, c, auth.ProfileWrite, ""); err != nil {
		return nil, err
	}
	changes, err := r.applyProfiles(ctx, c, doc)
	if err != nil && fail.KindOf(err) != fail.Unavailable {
		return nil, r.refused(ctx, c, string(auth.ProfileWrite), "", err)
	}
	return changes, err
}

func (r *RA) applyProfiles(ctx context.Context, c Caller, doc *policy.Document) ([]ProfileChange, error) {
	if doc == nil || len(doc.Profiles) == 0 {
		return nil, fail.New(fail.Malformed, "the document has no profiles")
	}
	type item struct {
		p   *store.Profile
		chg ProfileChange
	}
	items := make([]item, 0, len(doc.Profiles))
	for _, p := range doc.Profiles {
		compiled, err := policy.Compile(p)
		if err != nil {
			return nil, fail.Wrap(fail.Malformed, fmt.Errorf("profile %q: %w", p.Name, err))
		}
		if _, err := r.ca.Issuer(p.Issuer); err != nil {
			return nil, fail.New(fail.Malformed, "profile %q: issuer %q does not exist", p.Name, p.Issuer)
		}
		if err := r.lintProfile(compiled); err != nil {
			return nil, err
		}
		b, err := json.Marshal(p)
		if err != nil {
			return nil, fail.Wrap(fail.Internal, err)
		}
		action := "created"
		old, err := r.store.GetProfile(ctx, p.Name)
		switch {
		case err == nil && bytes.Equal(old.Doc, b):
			action = "unchanged"
		case err == nil:
			action = "updated"
		case !errors.Is(err, store.ErrNotFound):
			return nil, storeErr(err, "profile")
		}
		items = append(items, item{&store.Profile{Name: p.Name, Doc: b, UpdatedAt: r.now().UTC()}, ProfileChange{p.Name, action}})
	}
	err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, it := range items {
			if it.chg.Action == "unchanged" {
				continue
			}
			if err := tx.PutProfile(ctx, it.p); err != nil {
				return err
			}
			if err := tx.AppendAudit(ctx, r.event(c, "profile.apply", it.p.Name, audit.ResultSuccess, map[string]string{"action": it.chg.Action, "document": string(it.p.Doc)})); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, auditErr(err)
	}
	out := make([]ProfileChange, len(items))
	for i, it := range items {
		r.profiles.forget(it.p.Name)
		out[i] = it.chg
	}
	return out, nil
}

// DeleteProfile removes a profile. Certificates issued under it are kept.
func (r *RA) DeleteProfile(ctx context.Context, c Caller, name string) error {
	if err := r.authorize(ctx, c, auth.ProfileWrite, name); err != nil {
		return err
	}
	err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.DeleteProfile(ctx, name); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, r.event(c, "profile.delete", name, audit.ResultSuccess, nil))
	})
	if errors.Is(err, store.ErrNotFound) {
		return r.refused(ctx, c, "profile.delete", name, fail.New(fail.NotFound, "profile %q does not exist", name))
	}
	r.profiles.forget(name)
	return auditErr(err)
}

// Profiles lists the stored profiles.
func (r *RA) Profiles(ctx context.Context, c Caller) ([]policy.Profile, error) {
	if err := r.authorize(ctx, c, auth.ProfileRead, ""); err != nil {
		return nil, err
	}
	ps, err := r.store.ListProfiles(ctx)
	if err != nil {
		return nil, storeErr(err, "profiles")
	}
	out := make([]policy.Profile, 0, len(ps))
	for _, p := range ps {
		var prof policy.Profile
		if err := json.Unmarshal(p.Doc, &prof); err != nil {
			return nil, fail.Wrap(fail.Internal, fmt.Errorf("stored profile %q: %w", p.Name, err))
		}
		out = append(out, prof)
	}
	return out, nil
}
