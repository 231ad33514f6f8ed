package storecopy

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/sigil-pki/sigil/internal/store"
)

// MoreCounts counts the records of the agent, inventory, ACME and
// monitoring parts of a store.
type MoreCounts struct {
	JoinTokens         int
	Machines           int
	InventoryIds       int
	InventoryLocations int
	ScanSchedules      int
	ACMEProfiles       int
	ACMESecrets        int
	EABKeys            int
	ACMEAccounts       int
	ACMEOrders         int
	RenewEarly         int
	Findings           int
	Webhooks           int
	Deliveries         int
	AuditSinks         int
}

func (m MoreCounts) rows() []struct {
	Kind string
	N    int
} {
	return []struct {
		Kind string
		N    int
	}{
		{"join tokens", m.JoinTokens}, {"machines", m.Machines},
		{"inventory identities", m.InventoryIds}, {"inventory locations", m.InventoryLocations}, {"scan schedules", m.ScanSchedules},
		{"ACME directories", m.ACMEProfiles}, {"ACME secrets", m.ACMESecrets}, {"EAB keys", m.EABKeys},
		{"ACME accounts", m.ACMEAccounts}, {"ACME orders", m.ACMEOrders}, {"early-renewal marks", m.RenewEarly},
		{"findings", m.Findings}, {"webhooks", m.Webhooks}, {"webhook deliveries", m.Deliveries}, {"audit sink positions", m.AuditSinks},
	}
}

// acmeSecretNames are the ACME secrets a store may hold (sealed under the
// KEK, which the destination's servers share).
var acmeSecretNames = []string{"nonce-hmac"}

// Not copied: ACME nonces and rate-limit counters, which expire within
// minutes (a client whose nonce is unknown gets badNonce and retries, RFC
// 8555 §6.5), and the background lease, which the first server takes.

// copyMore copies the agent, inventory, ACME and monitoring records.
func copyMore(ctx context.Context, from store.Reader, to store.Store, progress func(string)) (MoreCounts, error) {
	var c MoreCounts
	var accts []*store.ACMEAccount
	steps := []func() error{
		func() error {
			return copyKind(ctx, to, progress, "join tokens", &c.JoinTokens,
				func() ([]*store.JoinToken, error) { return from.ListJoinTokens(ctx) },
				func(ctx context.Context, tx store.Tx, j *store.JoinToken) error { return tx.InsertJoinToken(ctx, j) })
		},
		func() error {
			return copyKind(ctx, to, progress, "machines", &c.Machines,
				func() ([]*store.Machine, error) { return from.ListMachines(ctx) },
				func(ctx context.Context, tx store.Tx, m *store.Machine) error { return tx.PutMachine(ctx, m) })
		},
		func() error {
			// A page of identities (and their locations) per transaction:
			// the inventory may hold millions.
			err := pageInventory(ctx, from, func(ids []*store.InventoryIdentity, locs []*store.InventoryLocation) error {
				c.InventoryIds += len(ids)
				c.InventoryLocations += len(locs)
				return to.Update(ctx, func(ctx context.Context, tx store.Tx) error {
					if _, err := tx.UpsertIdentities(ctx, ids); err != nil {
						return err
					}
					_, err := tx.UpsertLocations(ctx, locs)
					return err
				})
			})
			if err != nil {
				return fmt.Errorf("copying the inventory: %w", err)
			}
			progress(fmt.Sprintf("copied %d inventory identities and %d locations", c.InventoryIds, c.InventoryLocations))
			return nil
		},
		func() error {
			return copyKind(ctx, to, progress, "scan schedules", &c.ScanSchedules,
				func() ([]*store.ScanSchedule, error) { return from.ListScanSchedules(ctx) },
				func(ctx context.Context, tx store.Tx, s *store.ScanSchedule) error { return tx.PutScanSchedule(ctx, s) })
		},
		func() error {
			return copyKind(ctx, to, progress, "ACME directories", &c.ACMEProfiles,
				func() ([]*store.ACMEProfile, error) { return from.ListACMEProfiles(ctx) },
				func(ctx context.Context, tx store.Tx, p *store.ACMEProfile) error { return tx.PutACMEProfile(ctx, p) })
		},
		func() error {
			for _, name := range acmeSecretNames {
				sealed, err := from.GetACMESecret(ctx, name)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err == nil {
					c.ACMESecrets++
					err = to.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.InsertACMESecret(ctx, name, sealed) })
				}
				if err != nil {
					return fmt.Errorf("copying ACME secret %s: %w", name, err)
				}
			}
			return nil
		},
		func() error {
			return copyKind(ctx, to, progress, "EAB keys", &c.EABKeys,
				func() ([]*store.EABKey, error) { return from.ListEABKeys(ctx, "") },
				func(ctx context.Context, tx store.Tx, k *store.EABKey) error { return tx.InsertEABKey(ctx, k) })
		},
		func() error {
			return copyKind(ctx, to, progress, "ACME accounts", &c.ACMEAccounts,
				func() (l []*store.ACMEAccount, err error) { accts, err = from.ListACMEAccounts(ctx); return accts, err },
				func(ctx context.Context, tx store.Tx, a *store.ACMEAccount) error {
					return tx.InsertACMEAccount(ctx, a)
				})
		},
		func() error {
			for _, a := range accts {
				n := 0
				err := copyKind(ctx, to, func(string) {}, "ACME orders", &n,
					func() ([]*store.ACMEOrder, error) { return accountOrders(ctx, from, a.ID) },
					func(ctx context.Context, tx store.Tx, o *store.ACMEOrder) error { return tx.InsertACMEOrder(ctx, o) })
				if err != nil {
					return err
				}
				c.ACMEOrders += n
			}
			progress(fmt.Sprintf("copied %d ACME orders", c.ACMEOrders))
			return nil
		},
		func() error {
			marks, err := from.ListRenewEarly(ctx)
			if err == nil {
				c.RenewEarly = len(marks)
				err = to.Update(ctx, func(ctx context.Context, tx store.Tx) error {
					for serial, at := range marks {
						if err := tx.MarkRenewEarly(ctx, serial, at); err != nil {
							return err
						}
					}
					return nil
				})
			}
			if err != nil {
				return fmt.Errorf("copying early-renewal marks: %w", err)
			}
			progress(fmt.Sprintf("copied %d early-renewal marks", c.RenewEarly))
			return nil
		},
		func() error {
			return copyKind(ctx, to, progress, "findings", &c.Findings,
				func() ([]*store.Finding, error) {
					return from.ListFindings(ctx, store.FindingFilter{IncludeResolved: true})
				},
				func(ctx context.Context, tx store.Tx, f *store.Finding) error { return tx.ImportFinding(ctx, f) })
		},
		func() error {
			return copyKind(ctx, to, progress, "webhooks", &c.Webhooks,
				func() ([]*store.Webhook, error) { return from.ListWebhooks(ctx) },
				func(ctx context.Context, tx store.Tx, w *store.Webhook) error { return tx.InsertWebhook(ctx, w) })
		},
		func() error {
			return copyKind(ctx, to, progress, "webhook deliveries", &c.Deliveries,
				func() ([]*store.Delivery, error) { return from.ListDeliveries(ctx, store.DeliveryFilter{}) },
				func(ctx context.Context, tx store.Tx, d *store.Delivery) error {
					cp := *d // the destination numbers deliveries itself
					ok, err := tx.EnqueueDelivery(ctx, &cp)
					if err == nil && !ok {
						err = fmt.Errorf("delivery %s of webhook %s is there twice", d.DedupKey, d.WebhookID)
					}
					return err
				})
		},
		func() error {
			return copyKind(ctx, to, progress, "audit sink positions", &c.AuditSinks,
				func() ([]*store.AuditSinkState, error) { return from.ListAuditSinkStates(ctx) },
				func(ctx context.Context, tx store.Tx, s *store.AuditSinkState) error {
					return tx.PutAuditSinkState(ctx, s)
				})
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return c, err
		}
	}
	return c, nil
}

// copyKind copies the records list returns with put, BatchSize per
// transaction, and sets *n to their number.
func copyKind[T any](ctx context.Context, to store.Store, progress func(string), what string, n *int,
	list func() ([]T, error), put func(context.Context, store.Tx, T) error) error {
	items, err := list()
	if err == nil {
		*n = len(items)
		err = inBatches(ctx, to, items, put)
	}
	if err != nil {
		return fmt.Errorf("copying %s: %w", what, err)
	}
	progress(fmt.Sprintf("copied %d %s", *n, what))
	return nil
}

// accountOrders reads every order of an ACME account.
func accountOrders(ctx context.Context, s store.Reader, accountID string) ([]*store.ACMEOrder, error) {
	ids, err := s.ListACMEOrderIDs(ctx, accountID, math.MaxInt32)
	if err != nil {
		return nil, err
	}
	orders := make([]*store.ACMEOrder, 0, len(ids))
	for _, id := range ids {
		o, err := s.GetACMEOrder(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("order %s: %w", id, err)
		}
		orders = append(orders, o)
	}
	return orders, nil
}

// pageInventory calls fn with each page of inventory identities, in
// fingerprint order, and their locations.
func pageInventory(ctx context.Context, s store.Reader, fn func([]*store.InventoryIdentity, []*store.InventoryLocation) error) error {
	after := ""
	for {
		ids, err := s.ListInventory(ctx, store.InventoryFilter{After: after, Limit: BatchSize})
		if err != nil || len(ids) == 0 {
			return err
		}
		fps := make([]string, len(ids))
		for i, id := range ids {
			fps[i] = id.Fingerprint
		}
		locs, err := s.ListInventoryLocations(ctx, fps...)
		if err != nil {
			return err
		}
		if err := fn(ids, locs); err != nil {
			return err
		}
		after = fps[len(fps)-1]
	}
}

// countMore counts the records copyMore copies.
func countMore(ctx context.Context, s store.Reader) (MoreCounts, error) {
	var c MoreCounts
	var err error
	n := func(k int, e error) int {
		if err == nil {
			err = e
		}
		return k
	}
	jts, e := s.ListJoinTokens(ctx)
	c.JoinTokens = n(len(jts), e)
	ms, e := s.ListMachines(ctx)
	c.Machines = n(len(ms), e)
	e = pageInventory(ctx, s, func(ids []*store.InventoryIdentity, locs []*store.InventoryLocation) error {
		c.InventoryIds += len(ids)
		c.InventoryLocations += len(locs)
		return nil
	})
	n(0, e)
	sc, e := s.ListScanSchedules(ctx)
	c.ScanSchedules = n(len(sc), e)
	aps, e := s.ListACMEProfiles(ctx)
	c.ACMEProfiles = n(len(aps), e)
	for _, name := range acmeSecretNames {
		if _, e := s.GetACMESecret(ctx, name); e == nil {
			c.ACMESecrets++
		} else if !errors.Is(e, store.ErrNotFound) {
			n(0, e)
		}
	}
	eabs, e := s.ListEABKeys(ctx, "")
	c.EABKeys = n(len(eabs), e)
	accts, e := s.ListACMEAccounts(ctx)
	c.ACMEAccounts = n(len(accts), e)
	for _, a := range accts {
		ids, e := s.ListACMEOrderIDs(ctx, a.ID, math.MaxInt32)
		c.ACMEOrders += n(len(ids), e)
	}
	marks, e := s.ListRenewEarly(ctx)
	c.RenewEarly = n(len(marks), e)
	fs, e := s.ListFindings(ctx, store.FindingFilter{IncludeResolved: true})
	c.Findings = n(len(fs), e)
	hooks, e := s.ListWebhooks(ctx)
	c.Webhooks = n(len(hooks), e)
	ds, e := s.ListDeliveries(ctx, store.DeliveryFilter{})
	c.Deliveries = n(len(ds), e)
	sinks, e := s.ListAuditSinkStates(ctx)
	c.AuditSinks = n(len(sinks), e)
	return c, err
}
