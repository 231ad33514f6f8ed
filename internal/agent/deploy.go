package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Ownership of deployed files: the service that reads them may run as
// another user. -1 leaves the owner or group unchanged.
type Ownership struct{ UID, GID int }

// LookupOwnership resolves user and group names (or numbers).
func LookupOwnership(owner, group string) (Ownership, error) {
	o := Ownership{UID: -1, GID: -1}
	if owner != "" {
		if n, err := strconv.Atoi(owner); err == nil {
			o.UID = n
		} else if u, err := user.Lookup(owner); err == nil {
			o.UID, _ = strconv.Atoi(u.Uid)
		} else {
			return o, fmt.Errorf("unknown owner %q: %w", owner, err)
		}
	}
	if group != "" {
		if n, err := strconv.Atoi(group); err == nil {
			o.GID = n
		} else if g, err := user.LookupGroup(group); err == nil {
			o.GID, _ = strconv.Atoi(g.Gid)
		} else {
			return o, fmt.Errorf("unknown group %q: %w", group, err)
		}
	}
	return o, nil
}

// writeAtomic writes data to path through a temp file in the same
// directory that gets its mode and owner before any data and is renamed
// over path: a reader sees the old file or the new one, never a mix.
func writeAtomic(path string, data []byte, perm os.FileMode, own Ownership) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if own.UID != -1 || own.GID != -1 {
		if err = f.Chown(own.UID, own.GID); err != nil {
			return fmt.Errorf("writing %s: chown: %w", path, err)
		}
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// deploy writes the key (0600), then the certificate, chain and full chain
// (0644).
// A key path equal to the certificate path gets key and certificate in one
// file (as HAProxy wants). The key goes first: a server that reloads only
// after the hook never sees the new certificate without its key.
func deploy(cc *CertConfig, id *identity, own Ownership) error {
	keyPEM, err := marshalKey(id)
	if err != nil {
		return err
	}
	if cc.Key != "" && cc.Key == cc.Cert {
		return writeAtomic(cc.Key, append(append(keyPEM, id.cert...), id.chain...), 0o600, own)
	}
	if cc.Key != "" {
		if err := writeAtomic(cc.Key, keyPEM, 0o600, own); err != nil {
			return err
		}
	}
	if cc.Cert != "" {
		if err := writeAtomic(cc.Cert, id.cert, 0o644, own); err != nil {
			return err
		}
	}
	if cc.Chain != "" {
		if err := writeAtomic(cc.Chain, id.chain, 0o644, own); err != nil {
			return err
		}
	}
	if cc.FullChain != "" {
		full := append(append([]byte{}, id.cert...), id.chain...)
		if err := writeAtomic(cc.FullChain, full, 0o644, own); err != nil {
			return err
		}
	}
	return nil
}

// hookTimeout bounds a reload hook; a hung hook must not stop renewals.
const hookTimeout = 2 * time.Minute

// runHook runs the on-change command with sh -c. Its output is returned
// in the error (trimmed) so the failure can be reported.
func runHook(ctx context.Context, cc *CertConfig, id *identity) error {
	if cc.OnChange == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", cc.OnChange)
	cmd.Env = append(os.Environ(),
		"SIGIL_NAME="+cc.Name, "SIGIL_CERT="+cc.Cert, "SIGIL_KEY="+cc.Key, "SIGIL_CHAIN="+cc.Chain, "SIGIL_FULLCHAIN="+cc.FullChain,
		"SIGIL_SERIAL="+id.leaf.SerialNumber.Text(16), "SIGIL_NOT_AFTER="+id.leaf.NotAfter.UTC().Format(time.RFC3339))
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 500 {
			msg = msg[len(msg)-500:]
		}
		return fmt.Errorf("on-change hook %q failed: %w: %s", cc.OnChange, err, msg)
	}
	return nil
}
