package acme

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/mail"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/store"
)

type accountJSON struct {
	Status                 string   `json:"status"`
	Contact                []string `json:"contact,omitempty"`
	Orders                 string   `json:"orders,omitempty"`
	TermsOfServiceAgreed   bool     `json:"termsOfServiceAgreed,omitempty"`
	ExternalAccountBinding any      `json:"externalAccountBinding,omitempty"`
}

func (s *Server) accountBody(q *request, a *store.ACMEAccount) accountJSON {
	return accountJSON{Status: a.Status, Contact: a.Contact, Orders: q.base + "/acct/" + a.ID + "/orders"}
}

// maxListedOrders bounds the account's orders list (RFC 8555 §7.1.2.1
// allows pagination; the newest are the useful ones).
const maxListedOrders = 1000

func (s *Server) accountOrders(ctx context.Context, q *request) (*response, error) {
	if q.acct.ID != q.r.PathValue("id") {
		return nil, unauthorized("an account may only list its own orders")
	}
	ids, err := s.st.ListACMEOrderIDs(ctx, q.acct.ID, maxListedOrders)
	if err != nil {
		return nil, toProblem(err)
	}
	if err := s.spendOnly(ctx, q); err != nil {
		return nil, err
	}
	urls := make([]string, len(ids))
	for i, id := range ids {
		urls[i] = q.base + "/order/" + id
	}
	return &response{status: http.StatusOK, body: map[string][]string{"orders": urls}}, nil
}

func parseStoredJWK(b []byte) (*jose.JSONWebKey, error) {
	var k jose.JSONWebKey
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, serverInternal("stored account key: %v", err)
	}
	return &k, nil
}

// checkContacts allows up to 4 mailto: addresses.
func checkContacts(cs []string) error {
	if len(cs) > 4 {
		return prob("invalidContact", http.StatusBadRequest, "at most 4 contacts")
	}
	for _, c := range cs {
		addr, ok := strings.CutPrefix(c, "mailto:")
		if !ok {
			return prob("unsupportedContact", http.StatusBadRequest, "contact %q: only mailto: is supported", c)
		}
		if len(c) > 254 || strings.ContainsAny(addr, ",?\n\r") {
			return prob("invalidContact", http.StatusBadRequest, "contact %q is not a single email address", c)
		}
		if _, err := mail.ParseAddress(addr); err != nil {
			return prob("invalidContact", http.StatusBadRequest, "contact %q: %v", c, err)
		}
	}
	return nil
}

func (s *Server) newAccount(ctx context.Context, q *request) (*response, error) {
	var in struct {
		Contact                []string        `json:"contact"`
		TermsOfServiceAgreed   bool            `json:"termsOfServiceAgreed"`
		OnlyReturnExisting     bool            `json:"onlyReturnExisting"`
		ExternalAccountBinding json.RawMessage `json:"externalAccountBinding"`
	}
	if err := strictJSON(q.payload, &in); err != nil {
		return nil, err
	}
	tp, err := thumbprint(q.jws.jwk)
	if err != nil {
		return nil, malformed("%v", err)
	}
	existing, err := s.st.GetACMEAccountByKey(ctx, q.profile, tp)
	if err == nil {
		q.caller = ra.ACMECaller(q.profile, existing.ID)
		if err := s.spendOnly(ctx, q); err != nil {
			return nil, err
		}
		return &response{status: http.StatusOK, body: s.accountBody(q, existing), location: q.base + "/acct/" + existing.ID}, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, toProblem(err)
	}
	if in.OnlyReturnExisting {
		return nil, prob("accountDoesNotExist", http.StatusBadRequest, "no account exists for this key")
	}
	if err := checkContacts(in.Contact); err != nil {
		return nil, err
	}
	acct := &store.ACMEAccount{ID: newID(), Profile: q.profile, Thumbprint: tp, Status: "valid", Contact: in.Contact, CreatedAt: s.now().UTC()}
	if acct.JWK, err = json.Marshal(q.jws.jwk); err != nil {
		return nil, malformed("%v", err)
	}
	var eab *store.EABKey
	switch {
	case len(in.ExternalAccountBinding) > 0 && string(in.ExternalAccountBinding) != "null":
		if eab, err = s.checkEAB(ctx, q, in.ExternalAccountBinding); err != nil {
			return nil, err
		}
		acct.EABKID, acct.Owner = eab.KID, eab.Owner
	case q.settings.EABRequired:
		return nil, prob("externalAccountRequired", http.StatusUnauthorized, "this directory requires an external account binding (sigil acme eab create)")
	}
	q.caller = ra.ACMECaller(q.profile, acct.ID)
	err = s.change(ctx, q, "acme.account.create", acct.ID, map[string]any{"contact": acct.Contact, "eab": acct.EABKID, "owner": acct.Owner, "thumbprint": tp}, func(ctx context.Context, tx store.Tx) error {
		if eab != nil {
			if err := tx.BindEABKey(ctx, eab.KID, acct.ID); err != nil {
				if errors.Is(err, store.ErrConflict) {
					return unauthorized("the EAB key %s is revoked or already bound to an account", eab.KID)
				}
				return err
			}
		}
		return tx.InsertACMEAccount(ctx, acct)
	})
	if errors.Is(err, store.ErrConflict) {
		return nil, prob("malformed", http.StatusConflict, "an account for this key was created concurrently")
	}
	if err != nil {
		return nil, err
	}
	return &response{status: http.StatusCreated, body: s.accountBody(q, acct), location: q.base + "/acct/" + acct.ID}, nil
}

// checkEAB verifies an External Account Binding (RFC 8555 §7.3.4): an
// HS256 JWS by the EAB key over the account's JWK, for the newAccount URL.
func (s *Server) checkEAB(ctx context.Context, q *request, raw json.RawMessage) (*store.EABKey, error) {
	var f flatJWS
	if err := strictJSON(raw, &f); err != nil {
		return nil, unauthorized("externalAccountBinding is not a flattened JWS")
	}
	sig, err := jose.ParseSigned(string(raw), []jose.SignatureAlgorithm{jose.HS256, jose.HS384, jose.HS512})
	if err != nil || len(sig.Signatures) != 1 {
		return nil, unauthorized("externalAccountBinding is not a valid MAC-signed JWS")
	}
	h := sig.Signatures[0].Protected
	if h.Nonce != "" {
		return nil, unauthorized("externalAccountBinding must not carry a nonce")
	}
	if u, _ := h.ExtraHeaders["url"].(string); u != q.url {
		return nil, unauthorized("externalAccountBinding url must be the newAccount URL")
	}
	k, err := s.st.GetEABKey(ctx, h.KeyID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && k.Profile != q.profile) {
		return nil, unauthorized("unknown EAB key id %q", h.KeyID)
	}
	if err != nil {
		return nil, toProblem(err)
	}
	if !k.RevokedAt.IsZero() || k.AccountID != "" {
		return nil, unauthorized("the EAB key %s is revoked or already bound to an account", k.KID)
	}
	hmacKey, err := s.cfg.KEK.Open(k.Sealed, ra.EABAdditionalData(k.KID))
	if err != nil {
		return nil, serverInternal("opening EAB key: %v", err)
	}
	payload, err := sig.Verify(hmacKey)
	if err != nil {
		return nil, unauthorized("externalAccountBinding MAC does not verify")
	}
	var inner jose.JSONWebKey
	if err := json.Unmarshal(payload, &inner); err != nil || !keysEqual(&inner, q.jws.jwk) {
		return nil, unauthorized("externalAccountBinding does not bind this account key")
	}
	return k, nil
}

func (s *Server) account(ctx context.Context, q *request) (*response, error) {
	if q.acct.ID != q.r.PathValue("id") {
		return nil, unauthorized("an account may only read or update itself")
	}
	loc := q.base + "/acct/" + q.acct.ID
	if q.postAsGet() {
		if err := s.spendOnly(ctx, q); err != nil {
			return nil, err
		}
		return &response{status: http.StatusOK, body: s.accountBody(q, q.acct), location: loc}, nil
	}
	var in struct {
		Contact *[]string `json:"contact"`
		Status  string    `json:"status"`
	}
	if err := strictJSON(q.payload, &in); err != nil {
		return nil, err
	}
	a := *q.acct
	action := "acme.account.update"
	if in.Contact != nil {
		if err := checkContacts(*in.Contact); err != nil {
			return nil, err
		}
		a.Contact = *in.Contact
	}
	switch in.Status {
	case "":
	case "deactivated":
		a.Status, action = "deactivated", "acme.account.deactivate"
	default:
		return nil, malformed("an account's status can only be set to deactivated")
	}
	if err := s.change(ctx, q, action, a.ID, map[string]any{"contact": a.Contact, "status": a.Status}, func(ctx context.Context, tx store.Tx) error {
		return tx.UpdateACMEAccount(ctx, &a)
	}); err != nil {
		return nil, err
	}
	return &response{status: http.StatusOK, body: s.accountBody(q, &a), location: loc}, nil
}

// keyChange rolls an account over to a new key (RFC 8555 §7.3.5).
func (s *Server) keyChange(ctx context.Context, q *request) (*response, error) {
	inner, err := parseJWS(q.payload, false)
	if err != nil {
		return nil, malformed("inner JWS: %v", err)
	}
	if inner.jwk == nil {
		return nil, malformed("the inner JWS must carry the new key as jwk")
	}
	if inner.hdr.URL != q.url {
		return nil, malformed("the inner JWS url must equal the outer url")
	}
	if inner.hdr.Nonce != "" {
		return nil, malformed("the inner JWS must not carry a nonce")
	}
	payload, err := inner.verify(inner.jwk)
	if err != nil {
		return nil, malformed("inner JWS: %v", err)
	}
	var in struct {
		Account string          `json:"account"`
		OldKey  json.RawMessage `json:"oldKey"`
	}
	if err := strictJSON(payload, &in); err != nil {
		return nil, err
	}
	loc := q.base + "/acct/" + q.acct.ID
	if in.Account != loc {
		return nil, unauthorized("the key change is for another account")
	}
	var old jose.JSONWebKey
	cur, err := parseStoredJWK(q.acct.JWK)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(in.OldKey, &old); err != nil || !keysEqual(&old, cur) {
		return nil, unauthorized("oldKey is not the account's current key")
	}
	tp, err := thumbprint(inner.jwk)
	if err != nil {
		return nil, malformed("%v", err)
	}
	if _, err := s.st.GetACMEAccountByKey(ctx, q.profile, tp); err == nil {
		return nil, prob("malformed", http.StatusConflict, "the new key is already in use by another account")
	}
	a := *q.acct
	a.Thumbprint = tp
	if a.JWK, err = json.Marshal(inner.jwk); err != nil {
		return nil, malformed("%v", err)
	}
	err = s.change(ctx, q, "acme.account.keychange", a.ID, map[string]string{"old": q.acct.Thumbprint, "new": tp}, func(ctx context.Context, tx store.Tx) error {
		return tx.UpdateACMEAccount(ctx, &a)
	})
	if errors.Is(err, store.ErrConflict) {
		return nil, prob("malformed", http.StatusConflict, "the new key is already in use")
	}
	if err != nil {
		return nil, err
	}
	return &response{status: http.StatusOK, body: s.accountBody(q, &a), location: loc}, nil
}
