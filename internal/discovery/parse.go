package discovery

import (
	"bytes"
	"crypto"
	"crypto/dsa" //nolint:staticcheck // recognising old DSA keys found on disk
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/sigil-pki/sigil/internal/inventory"
	"github.com/sigil-pki/sigil/internal/keys"
	"github.com/sigil-pki/sigil/internal/store"
)

// Finding is one identity found in a file, with what the location records.
type Finding struct {
	Identity inventory.Identity
	Index    int    // position among the file's objects of its kind (certificate chain order)
	Detail   string // "certificate", store.DetailPrivateKey…, "authorized_keys", "secret: line 3"
}

// ParseOptions select what ParseFile looks for.
type ParseOptions struct {
	SSH       bool     // OpenSSH keys, certificates, authorized_keys, known_hosts
	Secrets   bool     // well-known secret patterns
	Passwords []string // tried (after "") on PKCS#12 files and encrypted private keys
}

// maxObjects bounds the objects taken from one file (a bundle of every CA
// certificate holds ~150; a hostile file can hold millions).
const maxObjects = 10000

// ParseFile finds identities in the contents of one file. name is used only
// to recognise authorized_keys and known_hosts files. It never returns key
// material: private keys become their public key's fingerprint. Problems
// (malformed PEM, a wrong password) come back as errors next to whatever
// could be read.
func ParseFile(name string, data []byte, opt ParseOptions) ([]Finding, []error) {
	p := &fileParser{name: filepath.Base(name), opt: opt}
	head := data[:min(len(data), 8192)]
	text := !bytes.Contains(head, []byte{0})
	switch {
	case bytes.Contains(data, []byte("-----BEGIN ")):
		p.pem(data)
	case len(data) >= 4 && bytes.Equal(data[:4], []byte{0xfe, 0xed, 0xfe, 0xed}):
		p.jks(data)
	case len(data) >= 4 && bytes.Equal(data[:4], []byte{0xce, 0xce, 0xce, 0xce}):
		p.errorf("Java JCEKS keystore: not read; convert it to PKCS#12 (keytool -importkeystore -deststoretype pkcs12) to scan it")
	case len(data) > 0 && data[0] == 0x30:
		p.der(data)
	}
	if text && opt.SSH {
		p.ssh(data)
	}
	if text && opt.Secrets {
		p.secrets(data)
	}
	return p.found, p.errs
}

type fileParser struct {
	name    string
	opt     ParseOptions
	found   []Finding
	errs    []error
	certIdx int
}

func (p *fileParser) errorf(format string, args ...any) {
	if len(p.errs) < 100 {
		p.errs = append(p.errs, fmt.Errorf(format, args...))
	}
}

func (p *fileParser) add(id inventory.Identity, detail string) {
	if len(p.found) >= maxObjects {
		return
	}
	idx := 0
	if id.Kind == store.KindX509 {
		idx = p.certIdx
		p.certIdx++
	}
	p.found = append(p.found, Finding{Identity: id, Index: idx, Detail: detail})
}

func (p *fileParser) cert(der []byte, detail string) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		p.errorf("certificate %d: %v", p.certIdx, err)
		p.certIdx++
		return
	}
	p.add(inventory.FromCertificate(c), detail)
}

func (p *fileParser) pem(data []byte) {
	blocks := 0
	rest := data
	for len(p.found) < maxObjects {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks++
		switch b.Type {
		case "CERTIFICATE", "X509 CERTIFICATE":
			p.cert(b.Bytes, "certificate")
		case "TRUSTED CERTIFICATE":
			// OpenSSL's trusted form: the certificate followed by its trust settings.
			var raw asn1.RawValue
			if _, err := asn1.Unmarshal(b.Bytes, &raw); err != nil {
				p.errorf("trusted certificate: %v", err)
				continue
			}
			p.cert(raw.FullBytes, "trusted certificate")
		case "RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY", "DSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			p.pemKey(b)
		case "OPENSSH PRIVATE KEY":
			if p.opt.SSH {
				p.opensshKey(b)
			}
		}
	}
	if blocks == 0 && bytes.Contains(data, []byte("-----END ")) && wantedPEM(data) {
		p.errorf("malformed PEM: no block could be decoded")
	}
}

// wantedPEMTypes are the PEM types ParseFile reads: a file whose blocks are
// of other types (PGP armor, CSRs) is not malformed for discovery's purposes.
var wantedPEMTypes = []string{"CERTIFICATE-----", "PRIVATE KEY-----"}

func wantedPEM(data []byte) bool {
	for _, t := range wantedPEMTypes {
		if bytes.Contains(data, []byte(t)) {
			return true
		}
	}
	return false
}

// keyAlgOfType guesses the algorithm of an unreadable (encrypted) key from its PEM type.
func keyAlgOfType(t string) string {
	switch t {
	case "RSA PRIVATE KEY":
		return "RSA"
	case "EC PRIVATE KEY":
		return "ECDSA"
	case "DSA PRIVATE KEY":
		return "DSA"
	}
	return "unknown"
}

func (p *fileParser) pemKey(b *pem.Block) {
	//nolint:staticcheck // legacy "Proc-Type: 4,ENCRYPTED" keys exist on disk; we only detect them
	encrypted := b.Type == "ENCRYPTED PRIVATE KEY" || x509.IsEncryptedPEMBlock(b)
	if !encrypted {
		key, err := ssh.ParseRawPrivateKey(pem.EncodeToMemory(b))
		if err != nil {
			p.errorf("%s: %v", strings.ToLower(b.Type), err)
			return
		}
		p.privateKey(key, store.DetailPrivateKey)
		return
	}
	enc := pem.EncodeToMemory(b)
	for _, pw := range p.opt.Passwords {
		if key, err := keys.ParsePrivateKeyPEM(enc, []byte(pw)); err == nil {
			p.privateKey(key, store.DetailPrivateKey+" (encrypted, password known)")
			return
		}
	}
	// The public key is not readable without the password: key the record
	// by the encrypted blob, which reveals nothing of the key.
	p.add(inventory.Identity{Fingerprint: inventory.SHA256Hex(b.Bytes), Kind: store.KindPrivateKey,
		Source: store.SourceDiscovered, KeyAlgorithm: keyAlgOfType(b.Type)}, store.DetailPrivateKey+" (encrypted)")
}

// privateKey records a decoded private key by its public half; the private
// value goes out of scope here.
func (p *fileParser) privateKey(key any, detail string) {
	var pub crypto.PublicKey
	switch k := key.(type) {
	case crypto.Signer:
		pub = k.Public()
	case *dsa.PrivateKey:
		pub = &k.PublicKey
	default:
		p.errorf("unsupported private key type %T", key)
		return
	}
	if id, ok := inventory.FromPublicKey(pub); ok {
		p.add(id, detail)
		return
	}
	// X.509 cannot encode it (DSA): use the SSH form of the public key.
	if sp, err := ssh.NewPublicKey(pub); err == nil {
		id := inventory.FromSSHPublicKey(sp, "")
		id.Kind = store.KindPrivateKey
		p.add(id, detail)
		return
	}
	p.errorf("private key of type %T: public key not encodable", pub)
}

func (p *fileParser) opensshKey(b *pem.Block) {
	raw := pem.EncodeToMemory(b)
	key, err := ssh.ParseRawPrivateKey(raw)
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing) && missing.PublicKey != nil:
		for _, pw := range p.opt.Passwords {
			if pw == "" {
				continue
			}
			if _, err := ssh.ParseRawPrivateKeyWithPassphrase(raw, []byte(pw)); err == nil {
				p.add(inventory.FromSSHPublicKey(missing.PublicKey, ""), store.DetailPrivateKey+" (openssh, encrypted, password known)")
				return
			}
		}
		p.add(inventory.FromSSHPublicKey(missing.PublicKey, ""), store.DetailPrivateKey+" (openssh, encrypted)")
	case err != nil:
		p.errorf("openssh private key: %v", err)
	default:
		signer, err := ssh.NewSignerFromKey(key)
		if err != nil {
			p.errorf("openssh private key: %v", err)
			return
		}
		p.add(inventory.FromSSHPublicKey(signer.PublicKey(), ""), store.DetailPrivateKey+" (openssh)")
	}
}

func (p *fileParser) der(data []byte) {
	if certs, err := x509.ParseCertificates(data); err == nil && len(certs) > 0 {
		for _, c := range certs[:min(len(certs), maxObjects)] {
			p.add(inventory.FromCertificate(c), "certificate (DER)")
		}
		return
	}
	if len(data) < 16<<10 {
		if k, err := x509.ParsePKCS8PrivateKey(data); err == nil {
			p.privateKey(k, store.DetailPrivateKey+" (DER)")
			return
		}
		if k, err := x509.ParsePKCS1PrivateKey(data); err == nil {
			p.privateKey(k, store.DetailPrivateKey+" (DER)")
			return
		}
		if k, err := x509.ParseECPrivateKey(data); err == nil {
			p.privateKey(k, store.DetailPrivateKey+" (DER)")
			return
		}
	}
	p.pkcs12(data)
}

// looksLikePKCS12 checks the PFX outer structure (SEQUENCE { INTEGER 3, …})
// before any password is tried.
func looksLikePKCS12(data []byte) bool {
	var pfx struct {
		Version  int
		AuthSafe asn1.RawValue
		MacData  asn1.RawValue `asn1:"optional"`
	}
	_, err := asn1.Unmarshal(data, &pfx)
	return err == nil && pfx.Version == 3
}

func (p *fileParser) pkcs12(data []byte) {
	if !looksLikePKCS12(data) {
		return
	}
	passwords := append([]string{""}, p.opt.Passwords...)
	for _, pw := range passwords {
		key, leaf, cas, err := pkcs12.DecodeChain(data, pw)
		if errors.Is(err, pkcs12.ErrIncorrectPassword) {
			continue
		}
		if err != nil {
			// No key bag: a trust store.
			certs, terr := pkcs12.DecodeTrustStore(data, pw)
			if errors.Is(terr, pkcs12.ErrIncorrectPassword) {
				continue
			}
			if terr != nil {
				p.errorf("pkcs12: %v", err)
				return
			}
			for _, c := range certs {
				p.add(inventory.FromCertificate(c), "certificate (pkcs12 trust store)")
			}
			return
		}
		if leaf != nil {
			p.add(inventory.FromCertificate(leaf), "certificate (pkcs12)")
		}
		for _, c := range cas {
			p.add(inventory.FromCertificate(c), "certificate (pkcs12)")
		}
		if key != nil {
			p.privateKey(key, store.DetailPrivateKey+" (pkcs12)")
		}
		return
	}
	p.errorf("pkcs12: password needed (tried the empty password and %d given)", len(p.opt.Passwords))
}

// sshMarkers start the key types an authorized_keys or .pub line may hold.
var sshMarkers = [][]byte{[]byte("ssh-"), []byte("ecdsa-sha2-"), []byte("sk-ssh-"), []byte("sk-ecdsa-")}

func hasSSHMarker(b []byte) bool {
	for _, m := range sshMarkers {
		if bytes.Contains(b, m) {
			return true
		}
	}
	return false
}

func (p *fileParser) ssh(data []byte) {
	if !hasSSHMarker(data) {
		return
	}
	if strings.HasPrefix(p.name, "known_hosts") || p.name == "ssh_known_hosts" {
		p.knownHosts(data)
		return
	}
	detail := "public key"
	if strings.HasPrefix(p.name, "authorized_keys") {
		detail = "authorized_keys"
	}
	for n, line := range bytes.Split(data, []byte("\n")) {
		if len(p.found) >= maxObjects {
			return
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' || !hasSSHMarker(line) {
			continue
		}
		pub, comment, options, _, err := ssh.ParseAuthorizedKey(line)
		if err != nil {
			if detail == "authorized_keys" {
				p.errorf("line %d: %v", n+1, err)
			}
			continue
		}
		d := detail
		for _, o := range options {
			if o == "cert-authority" {
				d += " (cert-authority)"
			}
		}
		p.add(inventory.FromSSHPublicKey(pub, comment), d)
	}
}

func (p *fileParser) knownHosts(data []byte) {
	rest := data
	for len(rest) > 0 && len(p.found) < maxObjects {
		marker, hosts, pub, _, next, err := ssh.ParseKnownHosts(rest)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				p.errorf("known_hosts: %v", err)
			}
			return
		}
		d := "known_hosts: " + inventoryClip(strings.Join(hosts, ","))
		if marker != "" {
			d += " (@" + marker + ")"
		}
		p.add(inventory.FromSSHPublicKey(pub, ""), d)
		rest = next
	}
}

func inventoryClip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
