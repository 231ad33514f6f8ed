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
	step := func(what string, n *int, err error) error {
		if err != nil {
			return fmt.Errorf("copying %s: %w", what, err)
		}
		progress(fmt.Sprintf("copied %d %s", *n, what))
		return nil
	}

	jts, err := from.ListJoinTokens(ctx)
	if err == nil {
		c.JoinTokens = len(jts)
		err = inBatches(ctx, to, jts, func(ctx context.Context, tx store.Tx, j *store.JoinToken) error { return tx.InsertJoinToken(ctx, j) })
	}
	if err := step("join tokens", &c.JoinTokens, err); err != nil {
		return c, err
	}
	ms, err := from.ListMachines(ctx)
	if err == nil {
		c.Machines = len(ms)
		err = inBatches(ctx, to, ms, func(ctx context.Context, tx store.Tx, m *store.Machine) error { return tx.PutMachine(ctx, m) })
	}
	if err := step("machines", &c.Machines, err); err != nil {
		return c, err
	}

	// The inventory, a page of identities (and their locations) per
	// transaction: it may hold millions.
	err = pageInventory(ctx, from, func(ids []*store.InventoryIdentity, locs []*store.InventoryLocation) error {
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
	if err := step("inventory identities", &c.InventoryIds, err); err != nil {
		return c, err
	}
	scheds, err := from.ListScanSchedules(ctx)
	if err == nil {
		c.ScanSchedules = len(scheds)
		err = inBatches(ctx, to, scheds, func(ctx context.Context, tx store.Tx, s *store.ScanSchedule) error { return tx.PutScanSchedule(ctx, s) })
	}
	if err := step("scan schedules", &c.ScanSchedules, err); err != nil {
		return c, err
	}

	aps, err := from.ListACMEProfiles(ctx)
	if err == nil {
		c.ACMEProfiles = len(aps)
		err = inBatches(ctx, to, aps, func(ctx context.Context, tx store.Tx, p *store.ACMEProfile) error { return tx.PutACMEProfile(ctx, p) })
	}
	if err := step("ACME directories", &c.ACMEProfiles, err); err != nil {
		return c, err
	}
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
			return c, fmt.Errorf("copying ACME secret %s: %w", name, err)
		}
	}
	eabs, err := from.ListEABKeys(ctx, "")
	if err == nil {
		c.EABKeys = len(eabs)
		err = inBatches(ctx, to, eabs, func(ctx context.Context, tx store.Tx, k *store.EABKey) error { return tx.InsertEABKey(ctx, k) })
	}
	if err := step("EAB keys", &c.EABKeys, err); err != nil {
		return c, err
	}
	accts, err := from.ListACMEAccounts(ctx)
	if err == nil {
		c.ACMEAccounts = len(accts)
		err = inBatches(ctx, to, accts, func(ctx context.Context, tx store.Tx, a *store.ACMEAccount) error {
			return tx.InsertACMEAccount(ctx, a)
		})
	}
	if err := step("ACME accounts", &c.ACMEAccounts, err); err != nil {
		return c, err
	}
	for _, a := range accts {
		ids, err := from.ListACMEOrderIDs(ctx, a.ID, math.MaxInt32)
		if err != nil {
			return c, fmt.Errorf("copying ACME orders: %w", err)
		}
		var orders []*store.ACMEOrder
		for _, id := range ids {
			o, err := from.GetACMEOrder(ctx, id)
			if err != nil {
				return c, fmt.Errorf("copying ACME order %s: %w", id, err)
			}
			orders = append(orders, o)
		}
		c.ACMEOrders += len(orders)
		if err := inBatches(ctx, to, orders, func(ctx context.Context, tx store.Tx, o *store.ACMEOrder) error { return tx.InsertACMEOrder(ctx, o) }); err != nil {
			return c, fmt.Errorf("copying ACME orders: %w", err)
		}
	}
	progress(fmt.Sprintf("copied %d ACME orders", c.ACMEOrders))
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
	if err := step("early-renewal marks", &c.RenewEarly, err); err != nil {
		return c, err
	}

	fs, err := from.ListFindings(ctx, store.FindingFilter{IncludeResolved: true})
	if err == nil {
		c.Findings = len(fs)
		err = inBatches(ctx, to, fs, func(ctx context.Context, tx store.Tx, f *store.Finding) error { return tx.ImportFinding(ctx, f) })
	}
	if err := step("findings", &c.Findings, err); err != nil {
		return c, err
	}
	hooks, err := from.ListWebhooks(ctx)
	if err == nil {
		c.Webhooks = len(hooks)
		err = inBatches(ctx, to, hooks, func(ctx context.Context, tx store.Tx, w *store.Webhook) error { return tx.InsertWebhook(ctx, w) })
	}
	if err := step("webhooks", &c.Webhooks, err); err != nil {
		return c, err
	}
	ds, err := from.ListDeliveries(ctx, store.DeliveryFilter{})
	if err == nil {
		c.Deliveries = len(ds)
		err = inBatches(ctx, to, ds, func(ctx context.Context, tx store.Tx, d *store.Delivery) error {
			cp := *d // the destination numbers deliveries itself
			ok, err := tx.EnqueueDelivery(ctx, &cp)
			if err == nil && !ok {
				err = fmt.Errorf("delivery %s of webhook %s is there twice", d.DedupKey, d.WebhookID)
			}
			return err
		})
	}
	if err := step("webhook deliveries", &c.Deliveries, err); err != nil {
		return c, err
	}
	sinks, err := from.ListAuditSinkStates(ctx)
	if err == nil {
		c.AuditSinks = len(sinks)
		err = inBatches(ctx, to, sinks, func(ctx context.Context, tx store.Tx, s *store.AuditSinkState) error {
			return tx.PutAuditSinkState(ctx, s)
		})
	}
	if err := step("audit sink positions", &c.AuditSinks, err); err != nil {
		return c, err
	}
	return c, nil
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
