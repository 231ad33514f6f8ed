package store

import "context"

// Leaser is implemented by stores that can elect one holder of a named lease
// among every process sharing the store. Sigil uses it so that cluster-wide
// background work (CRL refresh) runs on exactly one server at a time.
//
// Contract:
//   - At most one Lease of a given name is held at any time across all
//     processes sharing the store, except for the bounded window described
//     under Lost.
//   - Lead blocks until the caller holds the lease or ctx ends (then it
//     returns ctx's error). A holder that dies (even by SIGKILL) frees the
//     lease within a few seconds without cooperation.
//   - Lease.Lost is closed when the holder can no longer be sure it holds
//     the lease (e.g. its database connection dropped), within a bounded time
//     of the loss (a few seconds), and also after Release. Work done under a
//     lease must therefore stop when Lost closes and be idempotent: in the
//     moments before the loss is noticed another process may already hold it.
//   - Release gives the lease up; it is safe to call more than once.
type Leaser interface {
	Lead(ctx context.Context, name string) (Lease, error)
}

// Lease is a held lease (see Leaser).
type Lease interface {
	// Lost is closed when the lease is lost or released.
	Lost() <-chan struct{}
	// Release gives the lease up. Idempotent.
	Release()
}
