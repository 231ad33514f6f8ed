package keys

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
)

// WriteFileAtomic writes data to path so that readers see either the old file
// or the complete new one, never a torn write, and a crash leaves no partial
// key behind. The temp file lives in the same directory (rename is only atomic
// within a filesystem), gets its final mode before any data is written (so a
// secret is never briefly readable under a looser mode), is fsynced, renamed
// over path, and the directory is fsynced so the rename itself is durable.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return writeFileAtomic(path, data, perm, false)
}

// writeFileAtomic is WriteFileAtomic with an optional no-replace mode, used
// for KEK and key files where clobbering an existing file would destroy a key.
// In that mode the result wraps fs.ErrExist if path already exists.
func writeFileAtomic(path string, data []byte, perm os.FileMode, noReplace bool) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if base == "" {
		return fmt.Errorf("keys: write %q: path names a directory", path)
	}
	// CreateTemp opens with O_EXCL and mode 0600, so nobody else can have the
	// temp file open or read it before the Chmod below.
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close() // may already be closed; the error is irrelevant then
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("keys: write %s: chmod: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("keys: write %s: fsync: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("keys: write %s: close: %w", path, err)
	}
	if noReplace {
		err = publishNoReplace(tmp, path)
	} else {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	if err = syncDir(dir); err != nil {
		return fmt.Errorf("keys: write %s: fsync directory: %w", path, err)
	}
	return nil
}

// publishNoReplace moves tmp to path unless path exists. link(2) fails with
// EEXIST atomically, unlike a stat-then-rename; filesystems without hard links
// fall back to that racy check, which is still better than blind replacement.
func publishNoReplace(tmp, path string) error {
	lerr := os.Link(tmp, path)
	if lerr == nil {
		// path is published; a leftover temp name is untidy but harmless
		// (same inode, same mode), so it does not turn success into failure.
		_ = os.Remove(tmp)
		return nil
	}
	if errors.Is(lerr, fs.ErrExist) {
		return fs.ErrExist
	}
	if _, err := os.Lstat(path); err == nil {
		return fs.ErrExist
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Rename(tmp, path)
}

// syncDir makes a rename durable. Windows cannot fsync directories, and a
// few filesystems reject it (EINVAL/ENOTSUP); there is nothing more to do there.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}
