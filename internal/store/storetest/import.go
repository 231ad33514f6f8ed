package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

// importTests pin down what a store-to-store copy relies on: records of any
// state go in verbatim, every CRL can be listed, and sealed audit events can be
// imported unchanged but only as an exact continuation of the chain.
var importTests = []test{
	{"CertificatesAnyStatus", testImportCertificates},
	{"ListCRLs", testListCRLs},
	{"AuditEventsVerbatim", testImportAudit},
	{"AuditEventsAfterLocal", testImportAuditAfterLocal},
	{"AuditEventsRefused", testImportAuditRefused},
}

func testImportCertificates(t *testing.T, s store.Store) {
	planned := newCert("1a", base)
	issued := newCert("2b", base.Add(time.Second))
	issued.Status, issued.DER, issued.Fingerprint = identity.StatusIssued, []byte{0x30, 0x03, 0x02, 0x01, 0x09}, "ab12"
	issued.IssuedAt = base.Add(2 * time.Second)
	revoked := newCert("3c", base.Add(3*time.Second))
	revoked.Status, revoked.DER, revoked.Fingerprint = identity.StatusRevoked, []byte{0x30, 0x00, 0xff}, "cd34"
	revoked.IssuedAt, revoked.RevokedAt = base.Add(4*time.Second), base.Add(5*time.Hour+123456789)
	revoked.RevocationReason = identity.ReasonKeyCompromise
	insert(t, s, planned, issued, revoked)
	for _, c := range []*identity.Certificate{planned, issued, revoked} {
		checkCert(t, get(t, s, c.Serial), c)
	}
	all, err := s.ListCertificates(t.Context(), store.CertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("ListCertificates: %v", serials(all))
	}
	for _, c := range all {
		want := map[identity.Serial]*identity.Certificate{"1a": planned, "2b": issued, "3c": revoked}[c.Serial]
		checkCert(t, c, want)
	}
	// The imported revoked certificate is on the CRL like any other.
	entries, err := s.RevokedCertificates(t.Context(), "int-a", base)
	if err != nil || len(entries) != 1 || entries[0].Serial != "3c" || entries[0].Reason != identity.ReasonKeyCompromise ||
		!entries[0].RevokedAt.Equal(canonTime(revoked.RevokedAt)) {
		t.Errorf("RevokedCertificates = %+v, %v", entries, err)
	}
}

func testListCRLs(t *testing.T, s store.Store) {
	ctx := t.Context()
	if all, err := s.ListCRLs(ctx, ""); err != nil || len(all) != 0 {
		t.Fatalf("ListCRLs on empty store = %v, %v", all, err)
	}
	var want []*store.CRL
	for _, c := range []struct {
		issuer string
		n      int64
	}{{"b", 1}, {"a", 1}, {"b", 2}, {"a", 2}, {"a", 10}} {
		crl := &store.CRL{IssuerID: c.issuer, Number: c.n, ThisUpdate: base.Add(time.Duration(c.n) * time.Hour),
			NextUpdate: base.Add(time.Duration(c.n+24) * time.Hour), DER: []byte{0x30, byte(c.n), 0x00}}
		update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.InsertCRL(ctx, crl) })
		want = append(want, crl)
	}
	canon := func(cs []*store.CRL) []store.CRL {
		out := make([]store.CRL, len(cs))
		for i, c := range cs {
			out[i] = *c
			out[i].ThisUpdate, out[i].NextUpdate = canonTime(c.ThisUpdate), canonTime(c.NextUpdate)
		}
		return out
	}
	all, err := s.ListCRLs(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		checkTime(t, "CRL ThisUpdate", c.ThisUpdate)
		checkTime(t, "CRL NextUpdate", c.NextUpdate)
	}
	order := []*store.CRL{want[1], want[3], want[4], want[0], want[2]}
	if g, w := canon(all), canon(order); !reflect.DeepEqual(g, w) {
		t.Errorf("ListCRLs(all):\n got %+v\nwant %+v", g, w)
	}
	a, err := s.ListCRLs(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if g, w := canon(a), canon(order[:3]); !reflect.DeepEqual(g, w) {
		t.Errorf("ListCRLs(a):\n got %+v\nwant %+v", g, w)
	}
	if none, err := s.ListCRLs(ctx, "zz"); err != nil || len(none) != 0 {
		t.Errorf("ListCRLs(unknown) = %v, %v", none, err)
	}
}

// sealedChain seals n events after prev (nil for the start), as another
// store would have.
func sealedChain(prev *audit.Event, n int) []*audit.Event {
	out := make([]*audit.Event, n)
	for i := range out {
		e := event("token:admin", "cert.issue", "serial:"+string(rune('a'+i%26)), base.Add(time.Duration(i)*time.Minute+time.Duration(i)*1001))
		e.Seal(prev)
		out[i], prev = e, e
	}
	return out
}

func importEvents(ctx context.Context, s store.Store, es []*audit.Event) error {
	return s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, e := range es {
			if err := tx.ImportAuditEvent(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
}

func testImportAudit(t *testing.T, s store.Store) {
	es := sealedChain(nil, 30)
	if err := importEvents(t.Context(), s, es[:10]); err != nil {
		t.Fatalf("ImportAuditEvent: %v", err)
	}
	if err := importEvents(t.Context(), s, es[10:]); err != nil {
		t.Fatalf("ImportAuditEvent: %v", err)
	}
	checkEvents(t, "imported chain", verifyChain(t, s), es)
	seq, hash, err := s.AuditHead(t.Context())
	if err != nil || seq != 30 || hash != es[29].Hash {
		t.Fatalf("AuditHead = %d, %q, %v; want 30, %q", seq, hash, err, es[29].Hash)
	}
	// Appending goes on from the imported head.
	next := event("token:admin", "cert.revoke", "serial:zz", base.Add(time.Hour))
	appendEvents(t, s, next)
	if next.Seq != 31 || next.PrevHash != es[29].Hash {
		t.Errorf("append after import: seq %d prev %q", next.Seq, next.PrevHash)
	}
	verifyChain(t, s)
}

func testImportAuditAfterLocal(t *testing.T, s store.Store) {
	local := []*audit.Event{event("a", "x.one", "", base), event("a", "x.two", "", base)}
	appendEvents(t, s, local...)
	imported := sealedChain(local[1], 3)
	if err := importEvents(t.Context(), s, imported); err != nil {
		t.Fatalf("ImportAuditEvent after local events: %v", err)
	}
	checkEvents(t, "mixed chain", verifyChain(t, s), append(local, imported...))
}

func testImportAuditRefused(t *testing.T, s store.Store) {
	ctx := t.Context()
	es := sealedChain(nil, 3)
	if err := importEvents(ctx, s, es[:1]); err != nil {
		t.Fatal(err)
	}
	edited := *es[1]
	edited.Detail = "edited"
	nanos := *es[1]
	nanos.Time = nanos.Time.Add(7) // sub-microsecond: the store could not keep it
	nanos.Hash = nanos.ComputeHash(nanos.PrevHash)
	wrongPrev := *es[1]
	wrongPrev.PrevHash = es[1].Hash
	for name, e := range map[string]*audit.Event{
		"gap":             es[2],
		"replay":          es[0],
		"edited content":  &edited,
		"sub-microsecond": &nanos,
		"wrong prev hash": &wrongPrev,
		"nil":             nil,
	} {
		err := importEvents(ctx, s, []*audit.Event{e})
		if err == nil || !errors.Is(err, audit.ErrUnavailable) {
			t.Errorf("import %s: got %v, want audit.ErrUnavailable", name, err)
		}
	}
	// A refusal inside a transaction undoes its earlier imports too.
	if err := importEvents(ctx, s, []*audit.Event{es[1], &edited}); err == nil {
		t.Error("importing a batch with an edited event succeeded")
	}
	checkEvents(t, "after refusals", verifyChain(t, s), es[:1])
	if err := importEvents(ctx, s, es[1:]); err != nil {
		t.Fatalf("import after refusals: %v", err)
	}
	checkEvents(t, "after refusals", verifyChain(t, s), es)
}
