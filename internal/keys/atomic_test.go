package keys

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing []byte // nil: no file before the write
		perm     os.FileMode
	}{
		{"new 0600", nil, 0o600},
		{"new 0640", nil, 0o640},
		{"new 0644 despite umask", nil, 0o644},
		{"replace", []byte("old contents, longer than the new ones"), 0o600},
		{"replace tightens mode", []byte("old"), 0o600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "token")
			if tc.existing != nil {
				if err := os.WriteFile(p, tc.existing, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			data := []byte("new secret")
			if err := WriteFileAtomic(p, data, tc.perm); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("contents %q, err %v", got, err)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if runtime.GOOS != "windows" && fi.Mode().Perm() != tc.perm {
				t.Fatalf("mode %#o; want %#o", fi.Mode().Perm(), tc.perm)
			}
			assertOnlyFiles(t, dir, "token")
		})
	}
}

func TestWriteFileAtomicErrors(t *testing.T) {
	dir := t.TempDir()
	if err := WriteFileAtomic(filepath.Join(dir, "no", "such", "dir"), []byte("x"), 0o600); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
	// Renaming over a directory fails after the temp file exists: it must be cleaned up.
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "sub"), []byte("x"), 0o600); err == nil {
		t.Fatal("replacing a non-empty directory succeeded")
	}
	assertOnlyFiles(t, dir, "sub")
	if err := WriteFileAtomic(dir+string(filepath.Separator), []byte("x"), 0o600); err == nil {
		t.Fatal("directory path accepted")
	}
}

func TestWriteFileAtomicNoReplace(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k")
	if err := writeFileAtomic(p, []byte("first"), 0o600, true); err != nil {
		t.Fatal(err)
	}
	err := writeFileAtomic(p, []byte("second"), 0o600, true)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("err = %v; want ErrExist", err)
	}
	if got, _ := os.ReadFile(p); string(got) != "first" {
		t.Fatalf("file replaced: %q", got)
	}
	assertOnlyFiles(t, dir, "k")
}
