// Package audit defines Sigil's tamper-evident audit events: every state
// change and every refused request is one event, and each event's hash covers
// the previous event's hash, so editing, removing or reordering rows breaks the
// chain at a row that Verify names.
package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Results of an audited action.
const (
	ResultSuccess = "success"
	ResultRefused = "refused"
	ResultError   = "error"
)

// ErrUnavailable marks a failure to write an audit event. Because audit fails
// closed, callers refuse the state change it was meant to record.
var ErrUnavailable = errors.New("audit log unavailable")

// GenesisHash is the PrevHash of the first event.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Event is one audit record. Seq, PrevHash and Hash are assigned by the store
// when the event is appended, inside the transaction of the change it records.
type Event struct {
	Seq      int64     `json:"seq"`
	Time     time.Time `json:"time"`
	Actor    string    `json:"actor"`
	Action   string    `json:"action"`
	Object   string    `json:"object,omitempty"`
	Result   string    `json:"result"`
	Detail   string    `json:"detail,omitempty"`
	PrevHash string    `json:"prev_hash"`
	Hash     string    `json:"hash"`
}

// ComputeHash returns the chain hash of e given the previous event's hash.
// Every field is length-prefixed so that no two distinct events encode alike.
func (e *Event) ComputeHash(prev string) string {
	h := sha256.New()
	var buf [8]byte
	field := func(s string) {
		binary.BigEndian.PutUint64(buf[:], uint64(len(s)))
		h.Write(buf[:])
		h.Write([]byte(s))
	}
	field(prev)
	binary.BigEndian.PutUint64(buf[:], uint64(e.Seq))
	h.Write(buf[:])
	field(e.Time.UTC().Format(time.RFC3339Nano))
	field(e.Actor)
	field(e.Action)
	field(e.Object)
	field(e.Result)
	field(e.Detail)
	return hex.EncodeToString(h.Sum(nil))
}

// Seal fills in Seq, PrevHash and Hash for an event that follows prev (nil
// for the first event). Stores call it while holding the chain's write lock.
func (e *Event) Seal(prev *Event) {
	if prev == nil {
		e.Seq, e.PrevHash = 1, GenesisHash
	} else {
		e.Seq, e.PrevHash = prev.Seq+1, prev.Hash
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond) // what every store round-trips exactly
	e.Hash = e.ComputeHash(e.PrevHash)
}

// ChainError names the first row at which the chain does not verify.
type ChainError struct {
	Seq    int64
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit chain broken at event %d: %s", e.Seq, e.Reason)
}

// Verifier checks a chain event by event, in order, so a store can stream it.
type Verifier struct {
	prev  *Event
	count int64
}

// Next checks one event against the one before it.
func (v *Verifier) Next(e *Event) error {
	wantSeq, wantPrev := int64(1), GenesisHash
	if v.prev != nil {
		wantSeq, wantPrev = v.prev.Seq+1, v.prev.Hash
	}
	switch {
	case e.Seq != wantSeq:
		return &ChainError{Seq: e.Seq, Reason: fmt.Sprintf("expected event %d here: an event was removed or reordered", wantSeq)}
	case e.PrevHash != wantPrev:
		return &ChainError{Seq: e.Seq, Reason: "previous-hash link does not match the event before it: removed or reordered"}
	case e.ComputeHash(e.PrevHash) != e.Hash:
		return &ChainError{Seq: e.Seq, Reason: "content does not match its hash: the row was edited"}
	}
	c := *e
	v.prev = &c
	v.count++
	return nil
}

// Count returns how many events verified so far.
func (v *Verifier) Count() int64 { return v.count }

// Finish checks the chain ended where the store's recorded head says it
// should, which catches removal of the newest events.
func (v *Verifier) Finish(headSeq int64, headHash string) (int64, error) {
	last, lastHash := int64(0), GenesisHash
	if v.prev != nil {
		last, lastHash = v.prev.Seq, v.prev.Hash
	}
	switch {
	case last == headSeq && lastHash != headHash:
		return v.count, &ChainError{Seq: last, Reason: "the newest event does not match the recorded head: it (or the head) was edited"}
	case last != headSeq:
		return v.count, &ChainError{Seq: last + 1, Reason: fmt.Sprintf("chain ends at event %d but the recorded head is event %d: newest events were removed or the head was edited", last, headSeq)}
	}
	return v.count, nil
}
