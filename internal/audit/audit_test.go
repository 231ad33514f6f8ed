package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

// chain returns n sealed events, as a store appends them.
func chain(n int) []Event {
	evs := make([]Event, n)
	var prev *Event
	for i := range evs {
		evs[i] = Event{
			Time:   t0.Add(time.Duration(i) * time.Second),
			Actor:  fmt.Sprintf("token:%016x", i),
			Action: "cert.issue",
			Object: fmt.Sprintf("%x", 1000+i),
			Result: ResultSuccess,
			Detail: fmt.Sprintf(`{"n":%d}`, i),
		}
		evs[i].Seal(prev)
		prev = &evs[i]
	}
	return evs
}

// verify runs a Verifier over evs and finishes at the given head.
func verify(evs []Event, headSeq int64, headHash string) (int64, error) {
	var v Verifier
	for i := range evs {
		if err := v.Next(&evs[i]); err != nil {
			return 0, err
		}
	}
	return v.Finish(headSeq, headHash)
}

func TestVerifier(t *testing.T) {
	const n = 5
	orig := chain(n)
	head := orig[n-1]
	cases := []struct {
		name string
		// edit changes a copy of the chain and may return a different head.
		edit    func(evs []Event) ([]Event, int64, string)
		wantSeq int64  // the event the error must name
		reason  string // "": the chain must verify
	}{
		{"intact", func(evs []Event) ([]Event, int64, string) { return evs, head.Seq, head.Hash }, 0, ""},
		{"edited time", editField(func(e *Event) { e.Time = e.Time.Add(time.Microsecond) }), 3, "edited"},
		{"edited time zone only", editField(func(e *Event) { e.Time = e.Time.In(time.FixedZone("X", 3600)) }), 0, ""},
		{"edited actor", editField(func(e *Event) { e.Actor = "mallory" }), 3, "edited"},
		{"edited action", editField(func(e *Event) { e.Action = "cert.revoke" }), 3, "edited"},
		{"edited object", editField(func(e *Event) { e.Object = "beef" }), 3, "edited"},
		{"edited result", editField(func(e *Event) { e.Result = ResultRefused }), 3, "edited"},
		{"edited detail", editField(func(e *Event) { e.Detail = "" }), 3, "edited"},
		{"edited hash", editField(func(e *Event) { e.Hash = strings.Repeat("a", 64) }), 3, "edited"},
		{"edited prev hash", editField(func(e *Event) { e.PrevHash = orig[0].Hash }), 3, "removed or reordered"},
		{"edited seq", editField(func(e *Event) { e.Seq = 7 }), 7, "removed or reordered"},
		{"edited and rehashed", editField(func(e *Event) { e.Actor = "mallory"; e.Hash = e.ComputeHash(e.PrevHash) }), 4, "removed or reordered"},
		{"removed middle", func(evs []Event) ([]Event, int64, string) {
			return append(evs[:2:2], evs[3:]...), head.Seq, head.Hash
		}, 4, "expected event 3"},
		{"removed middle and renumbered", func(evs []Event) ([]Event, int64, string) {
			out := append(evs[:2:2], evs[3:]...)
			for i := range out {
				out[i].Seq = int64(i + 1)
			}
			return out, head.Seq - 1, head.Hash
		}, 3, "removed or reordered"},
		{"removed first", func(evs []Event) ([]Event, int64, string) { return evs[1:], head.Seq, head.Hash }, 2, "expected event 1"},
		{"removed last", func(evs []Event) ([]Event, int64, string) { return evs[:n-1], head.Seq, head.Hash }, n, "newest events were removed"},
		{"removed last two", func(evs []Event) ([]Event, int64, string) { return evs[:n-2], head.Seq, head.Hash }, n - 1, "newest events were removed"},
		{"removed all", func(evs []Event) ([]Event, int64, string) { return nil, head.Seq, head.Hash }, 1, "newest events were removed"},
		// The newest event edited and rehashed: no later link catches it, only
		// the head does, and the error must name that event.
		{"last edited and rehashed", func(evs []Event) ([]Event, int64, string) {
			evs[n-1].Actor = "mallory"
			evs[n-1].Hash = evs[n-1].ComputeHash(evs[n-1].PrevHash)
			return evs, head.Seq, head.Hash
		}, n, "head"},
		{"head hash edited", func(evs []Event) ([]Event, int64, string) { return evs, head.Seq, orig[0].Hash }, n, "head"},
		{"reordered rows", func(evs []Event) ([]Event, int64, string) {
			evs[2], evs[3] = evs[3], evs[2]
			return evs, head.Seq, head.Hash
		}, 4, "expected event 3"},
		{"reordered contents, seqs kept", func(evs []Event) ([]Event, int64, string) {
			evs[2], evs[3] = evs[3], evs[2]
			evs[2].Seq, evs[3].Seq = 3, 4
			return evs, head.Seq, head.Hash
		}, 3, "removed or reordered"},
		{"wrong genesis", func(evs []Event) ([]Event, int64, string) {
			evs[0].PrevHash = strings.Repeat("1", 64)
			return evs, head.Seq, head.Hash
		}, 1, "previous-hash link"},
		{"rebuilt on another genesis", func(evs []Event) ([]Event, int64, string) {
			prev := strings.Repeat("1", 64)
			for i := range evs {
				evs[i].PrevHash = prev
				evs[i].Hash = evs[i].ComputeHash(prev)
				prev = evs[i].Hash
			}
			return evs, head.Seq, prev
		}, 1, "previous-hash link"},
		{"starts at seq 0", func(evs []Event) ([]Event, int64, string) {
			evs[0].Seq = 0
			return evs, head.Seq, head.Hash
		}, 0, "expected event 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evs, seq, hash := c.edit(append([]Event(nil), orig...))
			got, err := verify(evs, seq, hash)
			if c.reason == "" {
				if err != nil || got != n {
					t.Fatalf("verify = %d, %v; want %d events, no error", got, err, n)
				}
				return
			}
			var ce *ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("verify = %d, %v; want a *ChainError", got, err)
			}
			wantSeq := c.wantSeq
			if ce.Seq != wantSeq {
				t.Errorf("broken at event %d, want %d (%v)", ce.Seq, wantSeq, err)
			}
			if !strings.Contains(err.Error(), c.reason) || !strings.Contains(err.Error(), fmt.Sprintf("event %d", wantSeq)) {
				t.Errorf("error %q does not name event %d and %q", err, wantSeq, c.reason)
			}
		})
	}
}

// editField applies f to the third event.
func editField(f func(e *Event)) func(evs []Event) ([]Event, int64, string) {
	return func(evs []Event) ([]Event, int64, string) {
		f(&evs[2])
		last := evs[len(evs)-1]
		return evs, last.Seq, last.Hash
	}
}

func TestEmptyChain(t *testing.T) {
	var v Verifier
	if n, err := v.Finish(0, GenesisHash); n != 0 || err != nil {
		t.Errorf("empty chain at the genesis head = %d, %v", n, err)
	}
	if _, err := v.Finish(0, strings.Repeat("f", 64)); err == nil {
		t.Error("empty chain accepted a head hash other than genesis")
	}
	if _, err := v.Finish(3, GenesisHash); err == nil {
		t.Error("empty chain accepted a head at event 3")
	}
}

func TestSeal(t *testing.T) {
	first := Event{Time: t0.In(time.FixedZone("X", -7200)), Actor: "system", Action: "ca.create", Result: ResultSuccess}
	first.Seal(nil)
	if first.Seq != 1 || first.PrevHash != GenesisHash || first.Hash != first.ComputeHash(GenesisHash) {
		t.Errorf("first event sealed as %+v", first)
	}
	if first.Time.Location() != time.UTC || first.Time.Nanosecond()%1000 != 0 || !first.Time.Equal(t0.Truncate(time.Microsecond)) {
		t.Errorf("sealed time %v: want UTC truncated to the microsecond", first.Time)
	}
	second := Event{Time: t0, Actor: "system", Action: "crl.publish", Result: ResultSuccess}
	second.Seal(&first)
	if second.Seq != 2 || second.PrevHash != first.Hash {
		t.Errorf("second event sealed as %+v", second)
	}
}

// reference is an independent rendering of the documented encoding: every
// field length-prefixed (big-endian uint64), Seq as a big-endian uint64,
// time as UTC RFC 3339 with nanoseconds.
func reference(e *Event, prev string) string {
	h := sha256.New()
	put := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	put([]byte(prev))
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], uint64(e.Seq))
	h.Write(s[:])
	for _, f := range []string{e.Time.UTC().Format(time.RFC3339Nano), e.Actor, e.Action, e.Object, e.Result, e.Detail} {
		put([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestComputeHash(t *testing.T) {
	base := Event{Seq: 7, Time: t0, Actor: "system", Action: "cert.issue", Object: "3a0bff", Result: ResultSuccess, Detail: `{"profile":"web"}`}
	// A stored chain must verify with every later build: pin one value.
	const golden = "94adc64c4f7986f86d562de67b2d1cb2b9ccd60232a27b365ef246b803daea8c"
	got := base.ComputeHash(GenesisHash)
	if want := reference(&base, GenesisHash); got != want {
		t.Fatalf("ComputeHash = %s, independent encoding gives %s", got, want)
	}
	if got != golden {
		t.Errorf("ComputeHash = %s, pinned value %s: the hash encoding changed and existing chains would no longer verify", got, golden)
	}
	if again := base.ComputeHash(GenesisHash); again != got {
		t.Error("ComputeHash is not deterministic")
	}
	// Hash and PrevHash are not inputs: sealing does not change the content hash.
	sealed := base
	sealed.Hash, sealed.PrevHash = "x", "y"
	if sealed.ComputeHash(GenesisHash) != got {
		t.Error("ComputeHash depends on the Hash or PrevHash fields")
	}

	for _, c := range []struct {
		name string
		a, b func(e *Event)
		prev string
	}{
		{"field boundary actor/action", func(e *Event) { e.Actor, e.Action = "ab", "c" }, func(e *Event) { e.Actor, e.Action = "a", "bc" }, ""},
		{"field boundary object/result", func(e *Event) { e.Object, e.Result = "", "x" }, func(e *Event) { e.Object, e.Result = "x", "" }, ""},
		{"detail empty vs space", func(e *Event) { e.Detail = "" }, func(e *Event) { e.Detail = " " }, ""},
		{"seq", func(e *Event) { e.Seq = 1 }, func(e *Event) { e.Seq = 2 }, ""},
		{"time nanosecond", func(e *Event) {}, func(e *Event) { e.Time = e.Time.Add(time.Nanosecond) }, ""},
		{"prev hash", func(e *Event) {}, func(e *Event) {}, strings.Repeat("1", 64)},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := base, base
			c.a(&a)
			c.b(&b)
			prevB := GenesisHash
			if c.prev != "" {
				prevB = c.prev
			}
			if a.ComputeHash(GenesisHash) == b.ComputeHash(prevB) {
				t.Error("distinct events hash alike")
			}
		})
	}
	// The same instant in any time zone hashes alike.
	local := base
	local.Time = base.Time.In(time.FixedZone("Y", 5*3600+1800))
	if local.ComputeHash(GenesisHash) != got {
		t.Error("ComputeHash depends on the time zone")
	}
}

func TestChainErrorMessage(t *testing.T) {
	err := error(&ChainError{Seq: 42, Reason: "content does not match its hash: the row was edited"})
	if want := "audit chain broken at event 42: content does not match its hash: the row was edited"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}
