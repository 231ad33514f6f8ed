package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
)

// CheckImportedEvent reports whether e, an event sealed by another store, may
// be appended verbatim after the head (headSeq, headHash): it must be the next
// event, link to the head, be stored exactly (UTC, microsecond precision, the
// precision every store keeps) and match its own hash. Implementations of
// Tx.ImportAuditEvent call it while holding the chain's write lock.
func CheckImportedEvent(e *audit.Event, headSeq int64, headHash string) error {
	if e == nil {
		return errors.New("nil event")
	}
	c := *e
	c.Time = c.Time.UTC().Truncate(time.Microsecond)
	switch {
	case e.Seq != headSeq+1:
		return fmt.Errorf("event %d does not follow the head, event %d", e.Seq, headSeq)
	case e.PrevHash != headHash:
		return fmt.Errorf("event %d: previous hash %q does not match the head's hash %q", e.Seq, e.PrevHash, headHash)
	case !c.Time.Equal(e.Time):
		return fmt.Errorf("event %d: time %s is finer than a microsecond and cannot be stored exactly", e.Seq, e.Time.Format(time.RFC3339Nano))
	case c.ComputeHash(c.PrevHash) != e.Hash:
		return fmt.Errorf("event %d: content does not match its hash", e.Seq)
	}
	return nil
}
