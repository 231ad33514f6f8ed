//go:build !linux

package discovery

func pseudoFS(string) bool { return false }
