package storecopy_test

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/store"
	"github.com/sigil-pki/sigil/internal/storecopy"
)

// us is base at microsecond precision, which both stores keep.
var us = base.Truncate(time.Microsecond)

// populateMore writes records of every agent, inventory, ACME and
// monitoring kind, with inventory pages past one copy batch.
func populateMore(t *testing.T, s store.Store, identities int) storecopy.MoreCounts {
	t.Helper()
	ctx := t.Context()
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, j := range []*store.JoinToken{
			{ID: "jt-used", SecretHash: []byte{1}, Profile: "web", Names: []string{"m1.test", "alt.m1.test"}, CreatedBy: "tok-admin", CreatedAt: us, ExpiresAt: us.Add(time.Hour)},
			{ID: "jt-open", SecretHash: []byte{2}, Profile: "web", Names: []string{"m2.test"}, CreatedBy: "tok-admin", CreatedAt: us, ExpiresAt: us.Add(time.Hour)},
		} {
			if err := tx.InsertJoinToken(ctx, j); err != nil {
				return err
			}
		}
		if err := tx.ConsumeJoinToken(ctx, "jt-used", "1f", us.Add(time.Minute)); err != nil {
			return err
		}
		if err := tx.PutMachine(ctx, &store.Machine{Name: "m1.test", Profile: "web", Names: []string{"m1.test", "alt.m1.test"}, Attestation: "join_token",
			JoinTokenID: "jt-used", State: store.MachineActive, CurrentSerial: "2a", RenewedBy: "1f", FirstSeen: us, LastSeen: us.Add(time.Hour)}); err != nil {
			return err
		}
		if err := tx.PutScanSchedule(ctx, &store.ScanSchedule{Name: "dc1", Targets: []string{"10.0.0.0/24"}, Ports: []int{443, 8443}, SNI: []string{"a.test"},
			Every: time.Hour, Timeout: 3 * time.Second, Concurrency: 8, CreatedBy: "tok-admin", CreatedAt: us, NextRun: us.Add(time.Hour), LastRun: us, LastResult: "1 identities"}); err != nil {
			return err
		}
		if err := tx.PutACMEProfile(ctx, &store.ACMEProfile{Profile: "web", Enabled: true, EABRequired: true, UpdatedAt: us}); err != nil {
			return err
		}
		if err := tx.InsertACMESecret(ctx, "nonce-hmac", []byte{9, 9, 9}); err != nil {
			return err
		}
		if err := tx.InsertEABKey(ctx, &store.EABKey{KID: "eab_1", Profile: "web", Owner: "team-a", Sealed: []byte{7}, CreatedAt: us, AccountID: "acct-1"}); err != nil {
			return err
		}
		if err := tx.InsertACMEAccount(ctx, &store.ACMEAccount{ID: "acct-1", Profile: "web", Thumbprint: "tp", JWK: []byte(`{"kty":"EC"}`), Status: "valid",
			Contact: []string{"mailto:ops@example.org"}, Owner: "team-a", EABKID: "eab_1", CreatedAt: us}); err != nil {
			return err
		}
		for i := range 3 {
			if err := tx.InsertACMEOrder(ctx, &store.ACMEOrder{ID: fmt.Sprintf("ord-%d", i), AccountID: "acct-1", Profile: "web", Status: "valid",
				Expires: us.Add(time.Hour), Serial: fmt.Sprintf("%x", i+1), Doc: []byte(`{"identifiers":[]}`), CreatedAt: us.Add(time.Duration(i) * time.Second)}); err != nil {
				return err
			}
		}
		if err := tx.MarkRenewEarly(ctx, "1", us); err != nil {
			return err
		}
		if err := tx.ImportFinding(ctx, &store.Finding{ID: "no-owner:aa", Rule: "no-owner", Severity: "low", Rank: 1, Subject: "aa", Message: "no owner",
			FirstSeen: us, LastSeen: us.Add(time.Hour), ResolvedAt: us.Add(2 * time.Hour)}); err != nil {
			return err
		}
		if _, err := tx.UpsertFinding(ctx, &store.Finding{ID: "expiring:bb", Rule: "expiring", Severity: "medium", Rank: 2, Subject: "bb", LastSeen: us}); err != nil {
			return err
		}
		if err := tx.InsertWebhook(ctx, &store.Webhook{ID: "wh1", URL: "https://hooks.test/pki", Events: []string{"expiring", "revoked"}, SecretSealed: []byte{3}, CreatedBy: "tok-admin", CreatedAt: us}); err != nil {
			return err
		}
		for i, st := range []string{store.DeliveryPending, store.DeliveryDelivered} {
			d := &store.Delivery{WebhookID: "wh1", Event: "expiring", DedupKey: fmt.Sprintf("expiring:%d", i), Payload: []byte(`{}`), Status: st,
				Attempts: i, NextAttemptAt: us, LastStatus: 200 * i, CreatedAt: us}
			if st == store.DeliveryDelivered {
				d.DeliveredAt = us.Add(time.Second)
			}
			if _, err := tx.EnqueueDelivery(ctx, d); err != nil {
				return err
			}
		}
		return tx.PutAuditSinkState(ctx, &store.AuditSinkState{Sink: "syslog://siem.test:514", Seq: 42, UpdatedAt: us})
	})
	if err != nil {
		t.Fatalf("populating: %v", err)
	}
	var ids []*store.InventoryIdentity
	var locs []*store.InventoryLocation
	for i := range identities {
		fp := fmt.Sprintf("%064x", i)
		ids = append(ids, &store.InventoryIdentity{Fingerprint: fp, Kind: store.KindX509, Source: store.SourceDiscovered, Subject: "CN=h" + fp[60:],
			Issuer: "CN=Other CA", SANs: []string{"h.test"}, Serial: "01", NotBefore: us, NotAfter: us.Add(time.Hour), SignatureAlg: "ECDSA-SHA256",
			KeyAlgorithm: "ECDSA", KeySize: 256, SPKISHA256: strings.Repeat("e", 64), Owner: "team-b", Labels: map[string]string{"env": "prod"},
			FirstSeen: us, LastSeen: us.Add(time.Minute), DER: []byte{0x30, byte(i)}})
		locs = append(locs, &store.InventoryLocation{Fingerprint: fp, Kind: store.LocationNet, Host: "10.0.0.1", Port: 443, FirstSeen: us, LastSeen: us.Add(time.Minute),
			TLSVersion: "TLS 1.3", CipherSuite: "TLS_AES_128_GCM_SHA256"})
		if i%2 == 0 {
			locs = append(locs, &store.InventoryLocation{Fingerprint: fp, Kind: store.LocationFS, Host: "web1", Path: "/etc/ssl/" + fp[56:] + ".pem",
				FirstSeen: us, LastSeen: us, FileMode: 0o644, FileOwner: "root", Detail: "pem"})
		}
	}
	for i := 0; i < len(ids); i += 500 {
		page := ids[i:min(i+500, len(ids))]
		err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			if _, err := tx.UpsertIdentities(ctx, page); err != nil {
				return err
			}
			var pl []*store.InventoryLocation
			for _, l := range locs {
				if l.Fingerprint >= page[0].Fingerprint && l.Fingerprint <= page[len(page)-1].Fingerprint {
					pl = append(pl, l)
				}
			}
			_, err := tx.UpsertLocations(ctx, pl)
			return err
		})
		if err != nil {
			t.Fatalf("populating the inventory: %v", err)
		}
	}
	return storecopy.MoreCounts{JoinTokens: 2, Machines: 1, InventoryIds: len(ids), InventoryLocations: len(locs), ScanSchedules: 1,
		ACMEProfiles: 1, ACMESecrets: 1, EABKeys: 1, ACMEAccounts: 1, ACMEOrders: 3, RenewEarly: 1, Findings: 2, Webhooks: 1, Deliveries: 2, AuditSinks: 1}
}

// moreSnapshot is everything copyMore copies, in a comparable form.
type moreSnapshot struct {
	JoinTokens []*store.JoinToken
	Machines   []*store.Machine
	Identities []*store.InventoryIdentity
	Locations  []*store.InventoryLocation
	Schedules  []*store.ScanSchedule
	ACMEProfs  []*store.ACMEProfile
	Secret     []byte
	EABKeys    []*store.EABKey
	Accounts   []*store.ACMEAccount
	Orders     []*store.ACMEOrder
	RenewEarly map[string]time.Time
	Findings   []*store.Finding
	Webhooks   []*store.Webhook
	Deliveries []*store.Delivery
	Sinks      []*store.AuditSinkState
}

func takeMoreSnapshot(t *testing.T, s store.Reader) moreSnapshot {
	t.Helper()
	ctx := t.Context()
	var m moreSnapshot
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var err error
	m.JoinTokens, err = s.ListJoinTokens(ctx)
	must(err)
	m.Machines, err = s.ListMachines(ctx)
	must(err)
	m.Identities, err = s.ListInventory(ctx, store.InventoryFilter{})
	must(err)
	for _, id := range m.Identities {
		if len(id.Labels) == 0 {
			id.Labels = nil
		}
		id.SANs = nilIfEmpty(id.SANs)
		var fps []string
		fps = append(fps, id.Fingerprint)
		l, err := s.ListInventoryLocations(ctx, fps...)
		must(err)
		m.Locations = append(m.Locations, l...)
	}
	m.Schedules, err = s.ListScanSchedules(ctx)
	must(err)
	m.ACMEProfs, err = s.ListACMEProfiles(ctx)
	must(err)
	m.Secret, err = s.GetACMESecret(ctx, "nonce-hmac")
	must(err)
	m.EABKeys, err = s.ListEABKeys(ctx, "")
	must(err)
	m.Accounts, err = s.ListACMEAccounts(ctx)
	must(err)
	for _, a := range m.Accounts {
		ids, err := s.ListACMEOrderIDs(ctx, a.ID, math.MaxInt32)
		must(err)
		slices.Sort(ids)
		for _, id := range ids {
			o, err := s.GetACMEOrder(ctx, id)
			must(err)
			o.Version = 0 // a copied order's optimistic-locking counter restarts
			m.Orders = append(m.Orders, o)
		}
	}
	m.RenewEarly, err = s.ListRenewEarly(ctx)
	must(err)
	m.Findings, err = s.ListFindings(ctx, store.FindingFilter{IncludeResolved: true})
	must(err)
	m.Webhooks, err = s.ListWebhooks(ctx)
	must(err)
	m.Deliveries, err = s.ListDeliveries(ctx, store.DeliveryFilter{})
	must(err)
	for _, d := range m.Deliveries {
		d.ID = 0 // the destination numbers deliveries itself
	}
	m.Sinks, err = s.ListAuditSinkStates(ctx)
	must(err)
	return m
}

// checkMoreCopied compares the two stores' agent, inventory, ACME and
// monitoring records field by field.
func checkMoreCopied(t *testing.T, got, want moreSnapshot) {
	t.Helper()
	if len(want.Machines) == 0 || len(want.Identities) == 0 || len(want.Orders) == 0 || len(want.Deliveries) == 0 {
		t.Fatalf("the source snapshot is missing records: %+v", want)
	}
	if !maps.EqualFunc(got.RenewEarly, want.RenewEarly, time.Time.Equal) {
		t.Errorf("early-renewal marks: got %v, want %v", got.RenewEarly, want.RenewEarly)
	}
	got.RenewEarly, want.RenewEarly = nil, nil
	compareFields(t, got, want)
}
