package keys

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func testKEK(t testing.TB) *KEK {
	t.Helper()
	b := make([]byte, KEKSize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	k, err := KEKFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := testKEK(t)
	for _, tc := range []struct {
		name   string
		pt, ad []byte
	}{
		{"empty", nil, nil},
		{"short", []byte("x"), []byte("ad")},
		{"no-ad", []byte("secret key bytes"), nil},
		{"large", bytes.Repeat([]byte{0xAB}, 10000), []byte("k-0123456789abcdef")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sealed, err := k.Seal(tc.pt, tc.ad)
			if err != nil {
				t.Fatal(err)
			}
			if want := 1 + nonceSize + len(tc.pt) + tagSize; len(sealed) != want || sealed[0] != sealVersion1 {
				t.Fatalf("sealed len %d version %d; want %d, %d", len(sealed), sealed[0], want, sealVersion1)
			}
			if len(tc.pt) > 4 && bytes.Contains(sealed, tc.pt) {
				t.Fatal("plaintext visible in sealed output")
			}
			got, err := k.Open(sealed, tc.ad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.pt) {
				t.Fatal("round trip mismatch")
			}
			again, _ := k.Seal(tc.pt, tc.ad)
			if bytes.Equal(again, sealed) {
				t.Fatal("two seals are identical: nonce not random")
			}
		})
	}
}

func TestOpenRejects(t *testing.T) {
	k, other := testKEK(t), testKEK(t)
	pt, ad := []byte("the CA private key"), []byte("k-0123456789abcdef")
	sealed, err := k.Seal(pt, ad)
	if err != nil {
		t.Fatal(err)
	}
	// Flipping any bit of any byte must fail: version, nonce, ciphertext, tag.
	for i := range sealed {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(sealed)
			bad[i] ^= bit
			if _, err := k.Open(bad, ad); err == nil {
				t.Fatalf("tampered byte %d (bit %#x) accepted", i, bit)
			}
		}
	}
	for n := range len(sealed) {
		if _, err := k.Open(sealed[:n], ad); err == nil {
			t.Fatalf("truncation to %d bytes accepted", n)
		}
	}
	for _, tc := range []struct {
		name    string
		kek     *KEK
		sealed  []byte
		ad      []byte
		wantErr error
	}{
		{"wrong AD", k, sealed, []byte("k-fedcba9876543210"), ErrDecrypt},
		{"missing AD", k, sealed, nil, ErrDecrypt},
		{"wrong KEK", other, sealed, ad, ErrDecrypt},
		{"appended byte", k, append(bytes.Clone(sealed), 0), ad, ErrDecrypt},
		{"unknown version", k, append([]byte{2}, sealed[1:]...), ad, ErrSealedFormat},
		{"empty", k, nil, ad, ErrSealedFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.kek.Open(tc.sealed, tc.ad)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Open = %v; want %v", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), string(pt)) {
				t.Fatal("error leaks plaintext")
			}
		})
	}
	var nilKEK *KEK
	if _, err := nilKEK.Seal(pt, ad); err == nil {
		t.Fatal("Seal with nil KEK succeeded")
	}
	if _, err := nilKEK.Open(sealed, ad); err == nil {
		t.Fatal("Open with nil KEK succeeded")
	}
}

func TestKEKRedacted(t *testing.T) {
	raw := bytes.Repeat([]byte{0x5A}, KEKSize) // 'Z': easy to spot in any encoding
	k, err := KEKFromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{string(raw), hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw), "90 90 90", "90, 90", "5a5a"}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d", "%T"} {
		outs = append(outs, fmt.Sprintf(verb, k), fmt.Sprintf(verb, *k))
	}
	outs = append(outs, fmt.Sprint(struct{ K *KEK }{k}), fmt.Sprintf("%+v", struct{ K KEK }{*k}))
	j, err := json.Marshal(map[string]any{"ptr": k, "val": *k})
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("x", "kek", k, "kekval", *k)
	outs = append(outs, logBuf.String())
	for _, out := range outs {
		for _, s := range secrets {
			if strings.Contains(strings.ToLower(out), strings.ToLower(s)) {
				t.Errorf("output %q reveals key material", out)
			}
		}
	}
	if k.String() != "KEK(redacted)" || k.GoString() != "KEK(redacted)" {
		t.Errorf("String/GoString = %q/%q", k.String(), k.GoString())
	}
	if got, _ := k.MarshalJSON(); string(got) != `"KEK(redacted)"` {
		t.Errorf("MarshalJSON = %s", got)
	}
}

func TestKEKFromBytes(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := KEKFromBytes(make([]byte, n)); err == nil {
			t.Errorf("KEKFromBytes(%d bytes) succeeded", n)
		}
	}
	b := bytes.Repeat([]byte{1}, KEKSize)
	k, err := KEKFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	b[0] = 2 // the KEK must own a copy
	if k.b[0] != 1 {
		t.Fatal("KEK aliases caller's slice")
	}
}

func writeKEKFile(t *testing.T, data []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // WriteFile is subject to umask
		t.Fatal(err)
	}
	return p
}

func TestLoadKEKFile(t *testing.T) {
	raw := make([]byte, KEKSize)
	rand.Read(raw)
	raw[0], raw[KEKSize-1] = '\n', ' ' // raw bytes must not be trimmed
	for _, tc := range []struct {
		name string
		data []byte
		mode os.FileMode
		ok   bool
	}{
		{"raw", raw, 0o600, true},
		{"raw 0400", raw, 0o400, true},
		{"base64", []byte(base64.StdEncoding.EncodeToString(raw)), 0o600, true},
		{"base64 newline", []byte(base64.StdEncoding.EncodeToString(raw) + "\n"), 0o600, true},
		{"base64url raw", []byte(base64.RawURLEncoding.EncodeToString(raw)), 0o600, true},
		{"hex", []byte("  " + hex.EncodeToString(raw) + "\r\n"), 0o600, true},
		{"hex upper", []byte(strings.ToUpper(hex.EncodeToString(raw))), 0o600, true},
		{"short hex", []byte(hex.EncodeToString(raw[:31])), 0o600, false},
		{"long base64", []byte(base64.StdEncoding.EncodeToString(append(raw, 1))), 0o600, false},
		{"33 raw bytes", append(bytes.Clone(raw), 0), 0o600, false},
		{"empty", nil, 0o600, false},
		{"garbage", []byte("not a key at all"), 0o600, false},
		{"huge", bytes.Repeat([]byte("a"), maxKEKFileSize+10), 0o600, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := LoadKEKFile(writeKEKFile(t, tc.data, tc.mode))
			if (err == nil) != tc.ok {
				t.Fatalf("LoadKEKFile: err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil {
				assertNoSecret(t, err.Error(), raw)
				return
			}
			if !bytes.Equal(k.b[:], raw) {
				t.Fatal("decoded wrong key")
			}
		})
	}
	t.Run("group or world readable", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("no Unix modes")
		}
		for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o601} {
			_, err := LoadKEKFile(writeKEKFile(t, raw, mode))
			if err == nil || !strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("mode %#o: err = %v; want refusal mentioning chmod 600", mode, err)
			}
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := LoadKEKFile(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v; want ErrNotExist", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		d := t.TempDir()
		os.Chmod(d, 0o700)
		if _, err := LoadKEKFile(d); err == nil {
			t.Fatal("directory accepted")
		}
	})
}

func assertNoSecret(t *testing.T, msg string, raw []byte) {
	t.Helper()
	for _, s := range []string{hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw)[:20], base64.RawURLEncoding.EncodeToString(raw)[:20]} {
		if strings.Contains(strings.ToLower(msg), strings.ToLower(s)) {
			t.Fatalf("error %q leaks key material", msg)
		}
	}
}

func TestKEKFromEnv(t *testing.T) {
	raw := make([]byte, KEKSize)
	rand.Read(raw)
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"std", base64.StdEncoding.EncodeToString(raw), true},
		{"std raw", base64.RawStdEncoding.EncodeToString(raw), true},
		{"url", base64.URLEncoding.EncodeToString(raw), true},
		{"url raw", base64.RawURLEncoding.EncodeToString(raw), true},
		{"hex", hex.EncodeToString(raw), true},
		{"trailing newline", hex.EncodeToString(raw) + "\n", true},
		{"empty", "", false},
		{"16 bytes", base64.StdEncoding.EncodeToString(raw[:16]), false},
		{"bad hex", hex.EncodeToString(raw)[:63] + "g", false},
		{"raw bytes", string(raw), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := KEKFromEnv(tc.value)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil {
				assertNoSecret(t, err.Error(), raw)
				if len(tc.value) > 8 && strings.Contains(err.Error(), tc.value[:8]) {
					t.Fatalf("error %q quotes the input", err)
				}
				return
			}
			if !bytes.Equal(k.b[:], raw) {
				t.Fatal("decoded wrong key")
			}
		})
	}
}

func TestKEKFromPassphrase(t *testing.T) {
	salt := []byte("0123456789abcdef")
	k1, err := KEKFromPassphrase([]byte("hunter2 but longer"), salt)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := KEKFromPassphrase([]byte("hunter2 but longer"), salt)
	if err != nil {
		t.Fatal(err)
	}
	if k1.b != k2.b {
		t.Fatal("derivation is not deterministic")
	}
	k3, err := KEKFromPassphrase([]byte("hunter2 but longer"), []byte("fedcba9876543210"))
	if err != nil {
		t.Fatal(err)
	}
	if k1.b == k3.b {
		t.Fatal("salt has no effect")
	}
	if _, err := KEKFromPassphrase([]byte("pw"), salt[:15]); err == nil {
		t.Fatal("15-byte salt accepted")
	}
	if _, err := KEKFromPassphrase(nil, salt); err == nil {
		t.Fatal("empty passphrase accepted")
	}
}

func TestGenerateKEKFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "kek")
	k, err := GenerateKEKFile(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %#o; want 0600", fi.Mode().Perm())
	}
	loaded, err := LoadKEKFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.b != k.b {
		t.Fatal("file does not hold the returned KEK")
	}
	before, _ := os.ReadFile(p)
	if _, err := GenerateKEKFile(p); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("overwrite: err = %v; want refusal", err)
	}
	after, _ := os.ReadFile(p)
	if !bytes.Equal(before, after) {
		t.Fatal("existing KEK file was modified")
	}
	assertOnlyFiles(t, dir, "kek")
	if _, err := GenerateKEKFile(filepath.Join(dir, "missing-dir", "kek")); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

// assertOnlyFiles fails if dir holds anything but names (e.g. a leftover temp file).
func assertOnlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if fmt.Sprint(got) != fmt.Sprint(names) {
		t.Fatalf("directory holds %v; want %v", got, names)
	}
}
