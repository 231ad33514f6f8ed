package lint

import (
	"crypto/x509"
	"slices"
	"testing"
)

func TestFindingsWarnings(t *testing.T) {
	w, err := NewWithWarnings()
	if err != nil {
		t.Fatal(err)
	}
	sample := sampleLeaf(t)
	fs, err := w.Findings(sample)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fs {
		if f.Status != "warn" {
			t.Errorf("sample leaf: unexpected %s %s %s", f.Status, f.Name, f.Details)
		}
		names = append(names, f.Name)
	}
	// crypto/x509 gives leaves no subject key identifier, which RFC 5280
	// says they SHOULD have: the warning must come through.
	if !slices.Contains(names, "w_ext_subject_key_identifier_missing_sub_cert") {
		t.Errorf("warnings %v lack w_ext_subject_key_identifier_missing_sub_cert", names)
	}
	for n := range QuietWarnings {
		if slices.Contains(names, n) {
			t.Errorf("quiet warning %s reported", n)
		}
	}
	// Warnings never fail Lint, on either linter.
	if err := w.Lint(sample); err != nil {
		t.Errorf("Lint with warnings loaded: %v", err)
	}
	plain := getLinter(t)
	if fs, err := plain.Findings(sample); err != nil || len(fs) != 0 {
		t.Errorf("New().Findings = %v, %v; want nothing (no w_ lints loaded)", fs, err)
	}
	// Errors still come through Findings, with their status.
	bad := leafWith(t, keyP256, func(c *x509.Certificate) { c.DNSNames = append(c.DNSNames, "a..b.test") })
	fs, err = w.Findings(bad)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(fs, func(f Finding) bool { return f.Status == "error" }) {
		t.Errorf("a leaf with an empty DNS label: findings %v have no error", fs)
	}
	if err := w.Lint(bad); err == nil {
		t.Error("Lint accepted a leaf with an empty DNS label")
	}
}
