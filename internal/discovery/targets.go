// Package discovery finds machine identities: TLS endpoints on networks
// (ScanNet) and certificates, keys, keystores, SSH keys and secrets in file
// trees (ScanFS). Scanners report into an inventory.Collector; they never
// keep private key material or secret values.
package discovery

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"math/big"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Endpoint is one handshake to make: an address (IP or host name), a port and
// the SNI to send ("" for none).
type Endpoint struct {
	Host string
	Port int
	SNI  string
}

// Addr is host:port for dialing.
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

func (e Endpoint) String() string {
	if e.SNI != "" && e.SNI != e.Host {
		return e.Addr() + " (sni " + e.SNI + ")"
	}
	return e.Addr()
}

// target is one parsed target spec.
type target struct {
	prefix netip.Prefix // a range (a single address is a /32 or /128)
	host   string       // a host name, when not an address
	port   int          // the spec's own port, else 0 (use Targets.ports)
}

// Targets is a parsed set of scan targets. Endpoints are produced lazily: a
// /16 is never materialised.
type Targets struct {
	specs []target
	ports []int
	sni   []string
}

// DefaultPorts are scanned when a target names no port and no --ports are given.
var DefaultPorts = []int{443}

// ParseTargets parses CIDRs ("10.0.0.0/24", "fd00::/120"), addresses, host
// names and host:port / [v6]:port specs. ports apply to specs without their
// own port; sni names are each tried on every endpoint in addition to the
// target's own host name.
func ParseTargets(specs []string, ports []int, sni []string) (*Targets, error) {
	if len(specs) == 0 {
		return nil, errors.New("no targets")
	}
	if len(ports) == 0 {
		ports = DefaultPorts
	}
	for _, p := range ports {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("invalid port %d", p)
		}
	}
	t := &Targets{ports: ports}
	seen := map[string]bool{}
	for _, n := range sni {
		n = strings.TrimSpace(n)
		if n == "" || seen[n] {
			continue
		}
		if len(n) > 253 || strings.ContainsAny(n, " \t/:\x00") {
			return nil, fmt.Errorf("invalid SNI name %q", n)
		}
		seen[n] = true
		t.sni = append(t.sni, n)
	}
	for _, s := range specs {
		tg, err := parseTarget(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		t.specs = append(t.specs, tg)
	}
	return t, nil
}

func parseTarget(s string) (target, error) {
	if s == "" {
		return target{}, errors.New("empty target")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return target{}, fmt.Errorf("invalid CIDR %q: %w", s, err)
		}
		return target{prefix: p.Masked()}, nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return target{prefix: netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())}, nil
	}
	host, port := s, 0
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return target{}, fmt.Errorf("invalid port in %q", s)
		}
		host, port = h, n
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return target{prefix: netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), port: port}, nil
	}
	if !validHostname(host) {
		return target{}, fmt.Errorf("invalid target %q (want a CIDR, an address, a host name or host:port)", s)
	}
	return target{host: host, port: port}, nil
}

func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				return false
			}
		}
	}
	return true
}

// Count is the number of endpoints, saturating at math.MaxInt64 (an IPv6
// /64 is not countable in an int).
func (t *Targets) Count() int64 {
	total := new(big.Int)
	for _, s := range t.specs {
		n := big.NewInt(1)
		if s.host == "" {
			n.Lsh(n, uint(s.prefix.Addr().BitLen()-s.prefix.Bits()))
		}
		per := len(t.ports)
		if s.port != 0 {
			per = 1
		}
		sni := len(t.sni)
		if s.host == "" || !t.hasSNI(s.host) {
			sni++
		}
		n.Mul(n, big.NewInt(int64(per*sni)))
		total.Add(total, n)
	}
	if !total.IsInt64() {
		return math.MaxInt64
	}
	return total.Int64()
}

func (t *Targets) hasSNI(name string) bool {
	for _, n := range t.sni {
		if n == name {
			return true
		}
	}
	return false
}

// All yields every endpoint in order: spec by spec, address by address, port
// by port, SNI by SNI. Memory use is constant whatever the range.
func (t *Targets) All() iter.Seq[Endpoint] {
	return func(yield func(Endpoint) bool) {
		for _, s := range t.specs {
			ports := t.ports
			if s.port != 0 {
				ports = []int{s.port}
			}
			emit := func(host, ownSNI string) bool {
				for _, p := range ports {
					if !(ownSNI != "" && t.hasSNI(ownSNI)) {
						if !yield(Endpoint{Host: host, Port: p, SNI: ownSNI}) {
							return false
						}
					}
					for _, n := range t.sni {
						if !yield(Endpoint{Host: host, Port: p, SNI: n}) {
							return false
						}
					}
				}
				return true
			}
			if s.host != "" {
				if !emit(s.host, s.host) {
					return
				}
				continue
			}
			for a := s.prefix.Addr(); a.IsValid() && s.prefix.Contains(a); a = a.Next() {
				if !emit(a.String(), "") {
					return
				}
			}
		}
	}
}
