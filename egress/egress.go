// Package egress decides which network addresses auditd may connect to on
// behalf of an organization (log stream destinations). An admin types a
// URL or host; without a policy that URL could point auditd at its own
// loopback services, the private network or a cloud metadata endpoint
// (server-side request forgery). The policy is applied when the socket is
// dialed, to the address actually dialed, so a name that resolves to a
// public address when checked and a private one when used (DNS rebinding)
// is still refused.
package egress

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Policy refuses addresses that are not on the public internet, except the
// prefixes an operator allowed. The zero Policy allows nothing private.
// A Policy is immutable once built.
type Policy struct {
	allow []netip.Prefix
}

// NewPolicy returns a policy that refuses non-public addresses except those
// in allow (AUDITD_EGRESS_ALLOW), which win over every built-in rule.
func NewPolicy(allow []netip.Prefix) *Policy {
	p := &Policy{allow: make([]netip.Prefix, len(allow))}
	for i, a := range allow {
		p.allow[i] = a.Masked()
	}
	return p
}

// ParseAllowList reads a comma-separated list of CIDR prefixes, the form of
// AUDITD_EGRESS_ALLOW, e.g. "127.0.0.0/8,::1/128". An empty string is an
// empty list. A bare address is refused: the operator should say how wide.
func ParseAllowList(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("egress allow list: %q is not a CIDR prefix such as 10.0.0.0/8", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// blocked are the ranges refused besides what netip's predicates cover
// (loopback, private, link-local, multicast, unspecified), with the reason
// shown to an admin.
var blocked = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved or broadcast address"},
	{netip.MustParsePrefix("169.254.169.254/32"), "cloud metadata address"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "cloud metadata address"},
}

// nat64 is the well-known NAT64 prefix: its addresses reach the IPv4
// address in their last 32 bits, which is checked in their place.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// RefusedError says the policy refused to connect to Addr. Its message names
// the address and why; it holds nothing secret.
type RefusedError struct {
	Addr   netip.Addr
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("egress policy refuses %s (%s); an operator can allow it with AUDITD_EGRESS_ALLOW", e.Addr, e.Reason)
}

// Allows reports whether addr is on the operator's allow list. Destinations
// that may use plain http are those, for tests and private deployments.
func (p *Policy) Allows(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, a := range p.allow {
		if a.Contains(addr) {
			return true
		}
	}
	return false
}

// Check returns a *RefusedError unless addr is a public address or on the
// allow list.
func (p *Policy) Check(addr netip.Addr) error {
	addr = addr.WithZone("").Unmap()
	if !addr.IsValid() {
		return &RefusedError{Addr: addr, Reason: "invalid address"}
	}
	if p.Allows(addr) {
		return nil
	}
	if reason := nonPublic(addr); reason != "" {
		return &RefusedError{Addr: addr, Reason: reason}
	}
	if nat64.Contains(addr) {
		b := addr.As16()
		v4 := netip.AddrFrom4([4]byte(b[12:]))
		if reason := nonPublic(v4); reason != "" && !p.Allows(v4) {
			return &RefusedError{Addr: addr, Reason: "NAT64 address of a " + reason}
		}
	}
	return nil
}

// nonPublic is why addr is not a public unicast address, or "".
func nonPublic(addr netip.Addr) string {
	for _, b := range blocked {
		if b.prefix.Contains(addr) {
			return b.reason
		}
	}
	switch {
	case addr.IsUnspecified():
		return "unspecified address"
	case addr.IsLoopback():
		return "loopback address"
	case addr.IsPrivate():
		return "private address"
	case addr.IsLinkLocalUnicast():
		return "link-local address"
	case addr.IsMulticast(), addr.IsLinkLocalMulticast(), addr.IsInterfaceLocalMulticast():
		return "multicast address"
	}
	return ""
}

// control is a net.Dialer Control function: it runs after the name is
// resolved, for each address the dialer tries, before connecting.
func (p *Policy) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &RefusedError{Reason: "unparsable address"}
	}
	return p.Check(ap.Addr())
}

// Dialer returns a dialer that connects only where p allows, giving up
// after timeout. Use its DialContext for every connection to a
// destination; never connect through a proxy, whose address would be
// checked in place of the destination's.
func (p *Policy) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: p.control}
}

// IsRefused reports whether err (from a dial through a Dialer) was the
// policy's refusal rather than a network failure.
func IsRefused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}
