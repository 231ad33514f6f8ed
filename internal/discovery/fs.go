package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/sigil-pki/sigil/internal/inventory"
	"github.com/sigil-pki/sigil/internal/store"
)

// FSOptions tune a filesystem scan.
type FSOptions struct {
	ParseOptions
	// MaxSize skips larger files (default 4 MiB): certificates, keys and
	// keystores are small; large files are logs, images and databases.
	MaxSize int64
	// Host is recorded in every location (default: os.Hostname()).
	Host string
	// Workers read and parse files in parallel (default GOMAXPROCS).
	Workers int
	// Done, if set, is called after each regular file examined.
	Done func(path string)
}

// ScanFS walks roots and adds what it finds in regular files to col. It
// follows no symbolic link below a root (so no loop is possible), skips
// devices, sockets and pipes and files over MaxSize, and records unreadable
// paths as scan errors. A cancelled ctx stops the walk; what was found stays in col.
func ScanFS(ctx context.Context, roots []string, opt FSOptions, col *inventory.Collector) error {
	if opt.MaxSize <= 0 {
		opt.MaxSize = 4 << 20
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	if opt.Host == "" {
		opt.Host, _ = os.Hostname()
	}
	owners := newOwnerCache()
	paths := make(chan string, 64)
	var wg sync.WaitGroup
	for range opt.Workers {
		wg.Go(func() {
			buf := make([]byte, 0, 64<<10)
			for path := range paths {
				buf = scanFile(path, opt, owners, col, buf)
				if opt.Done != nil {
					opt.Done(path)
				}
			}
		})
	}
	err := func() error {
		defer close(paths)
		for _, root := range roots {
			abs, err := filepath.Abs(root)
			if err != nil {
				col.Error(root, err)
				continue
			}
			// A root given as a symlink is what the user asked for: resolve it once.
			if resolved, err := filepath.EvalSymlinks(abs); err == nil {
				abs = resolved
			}
			werr := filepath.WalkDir(abs, func(path string, d fs.DirEntry, err error) error {
				if cerr := ctx.Err(); cerr != nil {
					return cerr
				}
				if err != nil {
					col.Error(path, err)
					if d != nil && d.IsDir() {
						return fs.SkipDir
					}
					return nil
				}
				if d.IsDir() && pseudoFS(path) {
					return fs.SkipDir
				}
				if !d.Type().IsRegular() {
					return nil // directories are walked; links, devices, pipes, sockets skipped
				}
				select {
				case paths <- path:
				case <-ctx.Done():
					return ctx.Err()
				}
				return nil
			})
			if werr != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				col.Error(abs, werr)
			}
		}
		return nil
	}()
	wg.Wait()
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// scanFile reads one file (through buf, returned for reuse) and records its findings.
func scanFile(path string, opt FSOptions, owners *ownerCache, col *inventory.Collector, buf []byte) []byte {
	f, err := os.Open(path)
	if err != nil {
		col.Error(path, unwrapPath(err))
		return buf
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		col.Error(path, unwrapPath(err))
		return buf
	}
	// Re-checked on the open file: the entry may have been replaced by a
	// FIFO (which would block a read) since the walk saw it.
	if !fi.Mode().IsRegular() || fi.Size() > opt.MaxSize {
		return buf
	}
	col.Scanned()
	buf = buf[:0]
	if cap(buf) < int(fi.Size())+1 {
		buf = make([]byte, 0, fi.Size()+1)
	}
	n, err := io.ReadFull(io.LimitReader(f, opt.MaxSize+1), buf[:cap(buf)])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		col.Error(path, unwrapPath(err))
		return buf
	}
	if int64(n) > opt.MaxSize {
		return buf // grew while we read it
	}
	data := buf[:n]
	found, errs := ParseFile(path, data, opt.ParseOptions)
	for _, e := range errs {
		col.Error(path, e)
	}
	if len(found) == 0 {
		return buf
	}
	mode, owner := unixMode(fi.Mode()), owners.owner(fi)
	for _, fd := range found {
		id := fd.Identity
		if id.DER != nil {
			id.DER = append([]byte(nil), id.DER...) // buf is reused for the next file
		}
		col.Add(id, inventory.Location{Kind: store.LocationFS, Host: opt.Host, Path: path,
			ChainIndex: fd.Index, FileMode: mode, FileOwner: owner, Detail: fd.Detail})
	}
	return buf
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// unixMode is the permission bits as chmod writes them (0o4755, 0o600…).
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}
