package acme

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/store"
)

const (
	orderLife  = 7 * 24 * time.Hour
	maxIdents  = 100
	chHTTP01   = "http-01"
	chDNS01    = "dns-01"
	chTLSALPN1 = "tls-alpn-01"
)

// Ident is an ACME identifier: "dns" or "ip" (RFC 8738).
type Ident struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// orderDoc is the JSON stored in store.ACMEOrder.Doc.
type orderDoc struct {
	Identifiers []Ident     `json:"identifiers"`
	Authzs      []*authzDoc `json:"authzs"`
	Error       *Problem    `json:"error,omitempty"`
}

type authzDoc struct {
	Identifier Ident       `json:"identifier"`
	Wildcard   bool        `json:"wildcard,omitempty"`
	Status     string      `json:"status"`
	Challenges []*challDoc `json:"challenges"`
}

type challDoc struct {
	Type      string    `json:"type"`
	Token     string    `json:"token"`
	Status    string    `json:"status"`
	Validated time.Time `json:"validated,omitzero"`
	Error     *Problem  `json:"error,omitempty"`
}

type loadedOrder struct {
	rec *store.ACMEOrder
	doc *orderDoc
}

func (s *Server) loadOrder(ctx context.Context, q *request, id string) (*loadedOrder, error) {
	o, err := s.st.GetACMEOrder(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && o.Profile != q.profile) {
		return nil, notFound("no order %q", id)
	}
	if err != nil {
		return nil, toProblem(err)
	}
	if o.AccountID != q.acct.ID {
		return nil, unauthorized("the order belongs to another account")
	}
	var d orderDoc
	if err := json.Unmarshal(o.Doc, &d); err != nil {
		return nil, serverInternal("stored order %s: %v", id, err)
	}
	lo := &loadedOrder{rec: o, doc: &d}
	if (o.Status == "pending" || o.Status == "ready") && !s.now().Before(o.Expires) {
		o.Status = "invalid"
		d.Error = unauthorized("the order expired")
	}
	return lo, nil
}

// recompute sets the order's status from its authorizations.
func (lo *loadedOrder) recompute() {
	if lo.rec.Status != "pending" {
		return
	}
	all := true
	for _, a := range lo.doc.Authzs {
		switch a.Status {
		case "invalid", "deactivated", "expired", "revoked":
			lo.rec.Status = "invalid"
			return
		case "valid":
		default:
			all = false
		}
	}
	if all {
		lo.rec.Status = "ready"
	}
}

func (s *Server) save(ctx context.Context, tx store.Tx, lo *loadedOrder) error {
	b, err := json.Marshal(lo.doc)
	if err != nil {
		return err
	}
	lo.rec.Doc = b
	if err := tx.UpdateACMEOrder(ctx, lo.rec); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return errRetry
		}
		return err
	}
	return nil
}

var errRetry = errors.New("acme: order changed concurrently")

type orderJSON struct {
	Status         string   `json:"status"`
	Expires        string   `json:"expires"`
	Identifiers    []Ident  `json:"identifiers"`
	Authorizations []string `json:"authorizations"`
	Finalize       string   `json:"finalize"`
	Certificate    string   `json:"certificate,omitempty"`
	Error          *Problem `json:"error,omitempty"`
	Replaces       string   `json:"replaces,omitempty"`
}

func (s *Server) orderBody(q *request, lo *loadedOrder) orderJSON {
	o := lo.rec
	out := orderJSON{Status: o.Status, Expires: o.Expires.UTC().Format(time.RFC3339), Identifiers: lo.doc.Identifiers,
		Finalize: q.base + "/order/" + o.ID + "/finalize", Error: lo.doc.Error, Replaces: o.Replaces}
	for i := range lo.doc.Authzs {
		out.Authorizations = append(out.Authorizations, q.base+"/authz/"+o.ID+"_"+strconv.Itoa(i))
	}
	if o.Serial != "" {
		out.Certificate = q.base + "/cert/" + o.Serial
	}
	return out
}

// normalizeName validates and lower-cases a DNS identifier (a leading
// "*." marks a wildcard).
func normalizeName(v string) (string, bool, error) {
	n := strings.ToLower(strings.TrimSuffix(v, "."))
	wild := strings.HasPrefix(n, "*.")
	base := strings.TrimPrefix(n, "*.")
	if len(n) == 0 || len(n) > 253 || net.ParseIP(base) != nil {
		return "", false, rejectedIdentifier("%q is not a DNS name", v)
	}
	for _, l := range strings.Split(base, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", false, rejectedIdentifier("%q is not a DNS name", v)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", false, rejectedIdentifier("%q is not a DNS name", v)
			}
		}
	}
	return n, wild, nil
}

// normalizeIP parses an ip identifier (RFC 8738 §3: an IPv4 dotted quad
// or an IPv6 address, RFC 5952 form on output); zones are refused and an
// IPv4-mapped IPv6 address is the IPv4 address.
func normalizeIP(v string) (netip.Addr, error) {
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, rejectedIdentifier("%q is not an IP address", v)
	}
	return a.Unmap(), nil
}

func newToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Server) newOrder(ctx context.Context, q *request) (*response, error) {
	var in struct {
		Identifiers []Ident `json:"identifiers"`
		NotBefore   string  `json:"notBefore"`
		NotAfter    string  `json:"notAfter"`
		Replaces    string  `json:"replaces"`
	}
	if err := strictJSON(q.payload, &in); err != nil {
		return nil, err
	}
	if len(in.Identifiers) == 0 || len(in.Identifiers) > maxIdents {
		return nil, malformed("an order needs 1 to %d identifiers", maxIdents)
	}
	if in.NotBefore != "" || in.NotAfter != "" {
		return nil, malformed("notBefore and notAfter are not supported: the profile sets the validity")
	}
	doc := &orderDoc{}
	var names, dnsNames []string // names: every identifier's value (rate limits, audit)
	var ips []net.IP
	for _, id := range in.Identifiers {
		var n string
		var wild bool
		var types []string
		switch id.Type {
		case "dns":
			var err error
			if n, wild, err = normalizeName(id.Value); err != nil {
				return nil, err
			}
			types = []string{chHTTP01, chDNS01, chTLSALPN1}
			if wild {
				types = []string{chDNS01}
			}
		case "ip":
			a, err := normalizeIP(id.Value)
			if err != nil {
				return nil, err
			}
			n = a.String()
			// RFC 8738 §7: no dns-01 for an address.
			types = []string{chHTTP01, chTLSALPN1}
		default:
			return nil, prob("unsupportedIdentifier", http.StatusBadRequest, "identifier type %q is not supported (dns and ip only)", id.Type)
		}
		if slices.Contains(names, n) {
			continue
		}
		names = append(names, n)
		if id.Type == "ip" {
			ips = append(ips, net.ParseIP(n))
		} else {
			dnsNames = append(dnsNames, n)
		}
		doc.Identifiers = append(doc.Identifiers, Ident{Type: id.Type, Value: n})
		a := &authzDoc{Identifier: Ident{Type: id.Type, Value: strings.TrimPrefix(n, "*.")}, Wildcard: wild, Status: "pending"}
		tok := newToken()
		for _, t := range types {
			a.Challenges = append(a.Challenges, &challDoc{Type: t, Token: tok, Status: "pending"})
		}
		doc.Authzs = append(doc.Authzs, a)
	}
	// Never validate a name the profile would not issue for.
	if err := s.ra.ACMECheckNames(ctx, q.caller, q.profile, q.acct.Owner, dnsNames, ips); err != nil {
		return nil, rejectedIdentifier("%v", err)
	}
	if in.Replaces != "" {
		if err := s.checkReplaces(ctx, q, in.Replaces); err != nil {
			return nil, err
		}
	}
	now := s.now().UTC()
	o := &store.ACMEOrder{ID: newID(), AccountID: q.acct.ID, Profile: q.profile, Status: "pending", Expires: now.Add(orderLife).Truncate(time.Second), Replaces: in.Replaces, CreatedAt: now}
	var err error
	if o.Doc, err = json.Marshal(doc); err != nil {
		return nil, serverInternal("%v", err)
	}
	err = s.change(ctx, q, "acme.order.create", o.ID, map[string]any{"names": names, "replaces": o.Replaces}, func(ctx context.Context, tx store.Tx) error {
		if err := s.limit.take(ctx, tx, q.acct.ID, names); err != nil {
			return err
		}
		return tx.InsertACMEOrder(ctx, o)
	})
	if errors.Is(err, store.ErrConflict) && o.Replaces != "" {
		return nil, prob("alreadyReplaced", http.StatusConflict, "certificate %s is already being replaced by another order", o.Replaces)
	}
	if err != nil {
		return nil, err
	}
	lo := &loadedOrder{rec: o, doc: doc}
	return &response{status: http.StatusCreated, body: s.orderBody(q, lo), location: q.base + "/order/" + o.ID}, nil
}

// checkReplaces validates newOrder's replaces (RFC 9773 §5): a certificate
// this account ordered, not yet replaced.
func (s *Server) checkReplaces(ctx context.Context, q *request, certID string) error {
	rec, err := s.certByARIID(ctx, certID)
	if err != nil {
		return err
	}
	if rec.Requester != ra.ACMECaller(q.profile, q.acct.ID).Protocol {
		return unauthorized("replaces names a certificate this account did not order")
	}
	if _, err := s.st.ACMEOrderReplacing(ctx, certID); err == nil {
		return prob("alreadyReplaced", http.StatusConflict, "certificate %s is already being replaced", certID)
	}
	return nil
}

func (s *Server) order(ctx context.Context, q *request) (*response, error) {
	if !q.postAsGet() {
		return nil, malformed("an order is read with POST-as-GET (empty payload)")
	}
	lo, err := s.loadOrder(ctx, q, q.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if err := s.spendOnly(ctx, q); err != nil {
		return nil, err
	}
	return &response{status: http.StatusOK, body: s.orderBody(q, lo), location: q.base + "/order/" + lo.rec.ID}, nil
}

// splitAuthzID parses <order>_<i>[_<j>].
func splitID(id string, parts int) (string, []int, error) {
	f := strings.Split(id, "_")
	if len(f) != parts+1 {
		return "", nil, notFound("no such resource %q", id)
	}
	idx := make([]int, parts)
	for i := range parts {
		n, err := strconv.Atoi(f[i+1])
		if err != nil || n < 0 || n > maxIdents*3 {
			return "", nil, notFound("no such resource %q", id)
		}
		idx[i] = n
	}
	return f[0], idx, nil
}

type authzJSON struct {
	Identifier Ident       `json:"identifier"`
	Status     string      `json:"status"`
	Expires    string      `json:"expires"`
	Challenges []challJSON `json:"challenges"`
	Wildcard   bool        `json:"wildcard,omitempty"`
}

type challJSON struct {
	Type      string   `json:"type"`
	URL       string   `json:"url"`
	Status    string   `json:"status"`
	Token     string   `json:"token"`
	Validated string   `json:"validated,omitempty"`
	Error     *Problem `json:"error,omitempty"`
}

func (s *Server) challBody(q *request, orderID string, i, j int, c *challDoc) challJSON {
	out := challJSON{Type: c.Type, URL: fmt.Sprintf("%s/chall/%s_%d_%d", q.base, orderID, i, j), Status: c.Status, Token: c.Token, Error: c.Error}
	if !c.Validated.IsZero() {
		out.Validated = c.Validated.UTC().Format(time.RFC3339)
	}
	return out
}

func (s *Server) authzBody(q *request, lo *loadedOrder, i int) authzJSON {
	a := lo.doc.Authzs[i]
	out := authzJSON{Identifier: a.Identifier, Status: a.Status, Expires: lo.rec.Expires.UTC().Format(time.RFC3339), Wildcard: a.Wildcard}
	for j, c := range a.Challenges {
		out.Challenges = append(out.Challenges, s.challBody(q, lo.rec.ID, i, j, c))
	}
	return out
}

func (s *Server) authz(ctx context.Context, q *request) (*response, error) {
	oid, idx, err := splitID(q.r.PathValue("id"), 1)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		lo, err := s.loadOrder(ctx, q, oid)
		if err != nil {
			return nil, err
		}
		if idx[0] >= len(lo.doc.Authzs) {
			return nil, notFound("no such authorization")
		}
		a := lo.doc.Authzs[idx[0]]
		if q.postAsGet() {
			if err := s.spendOnly(ctx, q); err != nil {
				return nil, err
			}
			return &response{status: http.StatusOK, body: s.authzBody(q, lo, idx[0])}, nil
		}
		var in struct {
			Status string `json:"status"`
		}
		if err := strictJSON(q.payload, &in); err != nil {
			return nil, err
		}
		if in.Status != "deactivated" {
			return nil, malformed("an authorization can only be updated to deactivated")
		}
		if a.Status != "pending" && a.Status != "valid" {
			return nil, malformed("the authorization is %s", a.Status)
		}
		a.Status = "deactivated"
		lo.recompute()
		err = s.change(ctx, q, "acme.authz.deactivate", q.r.PathValue("id"), nil, func(ctx context.Context, tx store.Tx) error { return s.save(ctx, tx, lo) })
		if errors.Is(err, errRetry) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &response{status: http.StatusOK, body: s.authzBody(q, lo, idx[0])}, nil
	}
}

// keyAuth is token.thumbprint (RFC 8555 §8.1).
func keyAuth(token string, acct *store.ACMEAccount) string { return token + "." + acct.Thumbprint }

// challenge answers POST-as-GET with the challenge, and a POST of {} by
// validating it. Validation runs within the request, bounded by the
// validation timeout, so no background worker is needed on any replica;
// the answer already carries the final status.
func (s *Server) challenge(ctx context.Context, q *request) (*response, error) {
	oid, idx, err := splitID(q.r.PathValue("id"), 2)
	if err != nil {
		return nil, err
	}
	i, j := idx[0], idx[1]
	lo, err := s.loadOrder(ctx, q, oid)
	if err != nil {
		return nil, err
	}
	if i >= len(lo.doc.Authzs) || j >= len(lo.doc.Authzs[i].Challenges) {
		return nil, notFound("no such challenge")
	}
	up := []string{`<` + fmt.Sprintf("%s/authz/%s_%d", q.base, oid, i) + `>;rel="up"`}
	c := lo.doc.Authzs[i].Challenges[j]
	if q.postAsGet() || c.Status != "pending" || lo.doc.Authzs[i].Status != "pending" {
		if err := s.spendOnly(ctx, q); err != nil {
			return nil, err
		}
		return &response{status: http.StatusOK, body: s.challBody(q, oid, i, j, c), links: up}, nil
	}
	var in map[string]any
	if err := strictJSON(q.payload, &in); err != nil {
		return nil, err
	}
	a := lo.doc.Authzs[i]
	vctx, cancel := context.WithTimeout(ctx, s.cfg.ValidationTimeout)
	verr := s.v.validate(vctx, c.Type, a.Identifier, c.Token, keyAuth(c.Token, q.acct))
	cancel()
	for attempt := 0; ; attempt++ {
		a, c = lo.doc.Authzs[i], lo.doc.Authzs[i].Challenges[j]
		detail := map[string]any{"type": c.Type, "name": a.Identifier.Value, "order": oid}
		action := "acme.challenge.valid"
		if verr != nil {
			c.Status, c.Error, a.Status = "invalid", verr, "invalid"
			detail["error"] = verr.Error()
			action = "acme.challenge.invalid"
		} else {
			c.Status, c.Validated, a.Status = "valid", s.now().UTC().Truncate(time.Second), "valid"
		}
		lo.recompute()
		err = s.change(ctx, q, action, q.r.PathValue("id"), detail, func(ctx context.Context, tx store.Tx) error { return s.save(ctx, tx, lo) })
		if errors.Is(err, errRetry) && attempt < 3 {
			if lo, err = s.loadOrder(ctx, q, oid); err != nil {
				return nil, err
			}
			if lo.doc.Authzs[i].Status != "pending" {
				return nil, malformed("the authorization changed concurrently")
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		return &response{status: http.StatusOK, body: s.challBody(q, oid, i, j, c), links: up}, nil
	}
}

// finalize checks the CSR against the order and issues through the RA.
func (s *Server) finalize(ctx context.Context, q *request) (*response, error) {
	lo, err := s.loadOrder(ctx, q, q.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if lo.rec.Status != "ready" {
		return nil, orderNotReady("the order is %s, not ready: every authorization must be valid first", lo.rec.Status)
	}
	var in struct {
		CSR string `json:"csr"`
	}
	if err := strictJSON(q.payload, &in); err != nil {
		return nil, err
	}
	der, err := base64.RawURLEncoding.DecodeString(in.CSR)
	if err != nil {
		return nil, badCSR("csr is not base64url DER")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, badCSR("csr: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, badCSR("csr signature: %v", err)
	}
	if err := csrMatches(csr, lo.doc.Identifiers); err != nil {
		return nil, err
	}
	// processing first, under the version check: of two concurrent
	// finalizes only one issues.
	lo.rec.Status = "processing"
	if err := s.change(ctx, q, "acme.order.finalize", lo.rec.ID, nil, func(ctx context.Context, tx store.Tx) error { return s.save(ctx, tx, lo) }); err != nil {
		if errors.Is(err, errRetry) {
			return nil, orderNotReady("the order is being finalized by another request")
		}
		return nil, err
	}
	issued, ierr := s.ra.ACMEIssue(ctx, q.caller, ra.IssueRequest{Profile: q.profile, CSR: der, Owner: q.acct.Owner})
	action := "acme.order.valid"
	detail := map[string]any{}
	if ierr != nil {
		lo.rec.Status = "invalid"
		lo.doc.Error = badCSR("issuance refused: %v", ierr)
		action, detail["error"] = "acme.order.invalid", ierr.Error()
	} else {
		lo.rec.Status, lo.rec.Serial = "valid", string(issued.Record.Serial)
		detail["serial"] = lo.rec.Serial
	}
	err = s.ra.ACMEChange(ctx, q.caller, action, lo.rec.ID, detail, func(ctx context.Context, tx store.Tx) error { return s.save(ctx, tx, lo) })
	if err != nil {
		return nil, err
	}
	if ierr != nil {
		return nil, lo.doc.Error
	}
	return &response{status: http.StatusOK, body: s.orderBody(q, lo), location: q.base + "/order/" + lo.rec.ID}, nil
}

// csrMatches requires the CSR's names to be exactly the order's
// identifiers: its DNS SANs (with a DNS common name) the dns identifiers, its
// IP SANs (with an IP common name) the ip identifiers (RFC 8738 §4).
func csrMatches(csr *x509.CertificateRequest, ids []Ident) error {
	if len(csr.URIs) > 0 || len(csr.EmailAddresses) > 0 {
		return badCSR("the CSR may carry only the order's DNS names and IP addresses")
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id.Type+":"+id.Value] = true
	}
	got := map[string]bool{}
	for _, n := range csr.DNSNames {
		got["dns:"+strings.ToLower(n)] = true
	}
	for _, ip := range csr.IPAddresses {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return badCSR("the CSR carries a malformed IP address")
		}
		got["ip:"+a.Unmap().String()] = true
	}
	if cn := csr.Subject.CommonName; cn != "" {
		key := "dns:" + strings.ToLower(cn)
		if a, err := netip.ParseAddr(cn); err == nil && a.Zone() == "" {
			key = "ip:" + a.Unmap().String()
		}
		if !want[key] {
			return badCSR("the CSR's common name %q is not an identifier of the order", cn)
		}
		got[key] = true
	}
	if len(got) != len(want) {
		return badCSR("the CSR's names differ from the order's identifiers")
	}
	for n := range got {
		if !want[n] {
			_, v, _ := strings.Cut(n, ":")
			return badCSR("the CSR names %q, which is not in the order", v)
		}
	}
	return nil
}
