//go:build unix

package discovery

import (
	"io/fs"
	"os/user"
	"strconv"
	"sync"
	"syscall"
)

// ownerCache maps uids to user names, looking each up once.
type ownerCache struct {
	mu    sync.Mutex
	names map[uint32]string
}

func newOwnerCache() *ownerCache { return &ownerCache{names: map[uint32]string{}} }

// owner names the file's owner ("" where the platform has no uid).
func (c *ownerCache) owner(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.names[st.Uid]; ok {
		return n
	}
	id := strconv.FormatUint(uint64(st.Uid), 10)
	n := id
	if u, err := user.LookupId(id); err == nil {
		n = u.Username
	}
	c.names[st.Uid] = n
	return n
}
