package inventory

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/store"
)

func selfSigned(t testing.TB, cn string) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{cn}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

type fakeLookup map[string]string

func (f fakeLookup) IssuedSerialsBySHA256(_ context.Context, fps []string) (map[string]string, error) {
	out := map[string]string{}
	for _, fp := range fps {
		if s, ok := f[fp]; ok {
			out[fp] = s
		}
	}
	return out, nil
}

func TestPrepare(t *testing.T) {
	der := selfSigned(t, "a.test")
	fp := SHA256Hex(der)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	good := func() *Report {
		return &Report{Scanner: "net", Host: "scanner1",
			Identities: []Identity{
				{Kind: store.KindX509, DER: der, Subject: "CN=lie", Owner: "ignored", Source: store.SourceIssued},
				{Fingerprint: strings.Repeat("AB", 32), Kind: store.KindSecret, RuleID: "aws-access-key-id"},
			},
			Locations: []Location{
				{Fingerprint: fp, Kind: store.LocationNet, Host: "10.0.0.1", Port: 443},
				{Fingerprint: strings.Repeat("ab", 32), Kind: store.LocationFS, Path: "/etc/app.env"},
			}}
	}
	b, err := Prepare(t.Context(), fakeLookup{}, good(), store.SourceDiscovered, now)
	if err != nil {
		t.Fatal(err)
	}
	x := b.Identities[0]
	if x.Fingerprint != fp || x.Subject != "CN=a.test" || x.Owner != "" || x.Source != store.SourceDiscovered || !x.LastSeen.Equal(now) {
		t.Errorf("x509 identity not recomputed from DER: %+v", x)
	}
	if b.Locations[1].Host != "scanner1" || b.Locations[1].Fingerprint != strings.Repeat("ab", 32) {
		t.Errorf("fs location: %+v", b.Locations[1])
	}
	b, err = Prepare(t.Context(), fakeLookup{fp: "7f"}, good(), store.SourceDiscovered, now)
	if err != nil || b.Identities[0].Source != store.SourceIssued || b.Identities[0].IssuedSerial != "7f" || b.Summary.Issued != 1 {
		t.Errorf("issued not recognised: %+v %v", b.Identities[0], err)
	}

	for name, mutate := range map[string]func(r *Report){
		"unknown kind":        func(r *Report) { r.Identities[1].Kind = "password" },
		"bad fingerprint":     func(r *Report) { r.Identities[1].Fingerprint = "xyz" },
		"wrong x509 fp":       func(r *Report) { r.Identities[0].Fingerprint = strings.Repeat("0", 64) },
		"x509 without DER":    func(r *Report) { r.Identities[0].DER = nil },
		"DER on a secret":     func(r *Report) { r.Identities[1].DER = []byte{1} },
		"orphan location":     func(r *Report) { r.Locations[0].Fingerprint = strings.Repeat("c", 64) },
		"bad location kind":   func(r *Report) { r.Locations[0].Kind = "moon" },
		"bad port":            func(r *Report) { r.Locations[0].Port = 70000 },
		"NUL in path":         func(r *Report) { r.Locations[1].Path = "/a\x00b" },
		"too many identities": func(r *Report) { r.Identities = make([]Identity, MaxIdentities+1) },
	} {
		r := good()
		mutate(r)
		if _, err := Prepare(t.Context(), nil, r, store.SourceDiscovered, now); fail.KindOf(err) != fail.Malformed {
			t.Errorf("%s: got %v, want a Malformed error", name, err)
		}
	}
}

func TestSplit(t *testing.T) {
	r := &Report{Scanner: "fs", Errors: []ScanError{{"x", "y"}}, Scanned: 9}
	for i := range 5 {
		fp := strings.Repeat(string(rune('a'+i)), 64)
		r.Identities = append(r.Identities, Identity{Fingerprint: fp})
		r.Locations = append(r.Locations, Location{Fingerprint: fp, Path: "/1"}, Location{Fingerprint: fp, Path: "/2"})
	}
	parts := r.Split(2)
	if len(parts) != 3 || len(parts[2].Identities) != 1 || len(parts[0].Locations) != 4 || len(parts[0].Errors) != 1 || len(parts[1].Errors) != 0 {
		t.Errorf("split: %d parts %+v", len(parts), parts)
	}
}

func TestNormalizeFingerprint(t *testing.T) {
	h := strings.Repeat("0a", 32)
	for in, want := range map[string]string{
		h: h, strings.ToUpper(h): h, strings.Repeat("0A:", 31) + "0A": h,
		SSHFingerprintFromHex(h): h, "SHA256:nope": "", "abc": "", "": "",
	} {
		if got := NormalizeFingerprint(in); got != want {
			t.Errorf("NormalizeFingerprint(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzReportJSON(f *testing.F) {
	der := selfSigned(f, "fuzz.test")
	seed, _ := json.Marshal(&Report{Scanner: "net", Identities: []Identity{{Kind: store.KindX509, DER: der}},
		Locations: []Location{{Fingerprint: SHA256Hex(der), Kind: store.LocationNet, Host: "h", Port: 1}}})
	f.Add(seed)
	f.Add([]byte(`{"identities":[{"fingerprint":"SHA256:AAAA","kind":"ssh-key"}],"locations":[{}]}`))
	f.Add([]byte(`{"identities":[{"kind":"x509","der":"MAA="}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var r Report
		if json.Unmarshal(body, &r) != nil {
			return
		}
		b, err := Prepare(context.Background(), fakeLookup{}, &r, store.SourceDiscovered, time.Unix(0, 0))
		if err != nil {
			if fail.KindOf(err) != fail.Malformed {
				t.Fatalf("non-Malformed error: %v", err)
			}
			return
		}
		for _, id := range b.Identities {
			if len(id.Fingerprint) != 64 || (id.Kind != store.KindX509 && id.DER != nil) || id.Source != store.SourceDiscovered {
				t.Fatalf("bad prepared identity %+v", id)
			}
		}
	})
}
