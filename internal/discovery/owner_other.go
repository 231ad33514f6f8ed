//go:build !unix

package discovery

import "io/fs"

type ownerCache struct{}

func newOwnerCache() *ownerCache { return &ownerCache{} }

func (c *ownerCache) owner(fs.FileInfo) string { return "" }
