package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	loopback, err := ParseAllowList("127.0.0.0/8, ::1/128")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr   string
		allow  []netip.Prefix
		reason string // "" means allowed
	}{
		{"93.184.215.14", nil, ""},
		{"2606:4700::1111", nil, ""},
		{"8.8.8.8", nil, ""},
		{"127.0.0.1", nil, "loopback"},
		{"127.9.9.9", nil, "loopback"},
		{"::1", nil, "loopback"},
		{"::ffff:127.0.0.1", nil, "loopback"},
		{"10.1.2.3", nil, "private"},
		{"172.16.0.1", nil, "private"},
		{"172.31.255.255", nil, "private"},
		{"192.168.1.1", nil, "private"},
		{"::ffff:192.168.1.1", nil, "private"},
		{"fc00::1", nil, "private"},
		{"fd12:3456::1", nil, "private"},
		{"169.254.1.1", nil, "link-local"},
		{"fe80::1", nil, "link-local"},
		{"fe80::1%eth0", nil, "link-local"},
		{"169.254.169.254", nil, "metadata"},
		{"fd00:ec2::254", nil, "metadata"},
		{"0.0.0.0", nil, "this-network"},
		{"::", nil, "unspecified"},
		{"224.0.0.1", nil, "multicast"},
		{"ff02::1", nil, "multicast"},
		{"ff05::1", nil, "multicast"},
		{"100.64.0.1", nil, "carrier-grade NAT"},
		{"100.127.255.254", nil, "carrier-grade NAT"},
		{"100.128.0.1", nil, ""},
		{"255.255.255.255", nil, "broadcast"},
		{"64:ff9b::a00:1", nil, "NAT64 address of a private"},
		{"64:ff9b::808:808", nil, ""},
		// The allow list wins, for exactly its prefixes.
		{"127.0.0.1", loopback, ""},
		{"::1", loopback, ""},
		{"::ffff:127.0.0.1", loopback, ""},
		{"10.0.0.1", loopback, "private"},
		{"169.254.169.254", []netip.Prefix{netip.MustParsePrefix("169.254.169.254/32")}, ""},
		{"10.2.3.4", []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}, ""},
		{"10.3.3.4", []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}, "private"},
	}
	for _, tt := range tests {
		p := NewPolicy(tt.allow)
		err := p.Check(netip.MustParseAddr(tt.addr))
		if tt.reason == "" {
			if err != nil {
				t.Errorf("%s (allow %v): %v, want allowed", tt.addr, tt.allow, err)
			}
			continue
		}
		var r *RefusedError
		if !errors.As(err, &r) {
			t.Errorf("%s (allow %v): %v, want a refusal", tt.addr, tt.allow, err)
			continue
		}
		if !strings.Contains(r.Reason, tt.reason) {
			t.Errorf("%s: reason %q, want it to mention %q", tt.addr, r.Reason, tt.reason)
		}
	}
	if err := NewPolicy(nil).Check(netip.Addr{}); err == nil {
		t.Error("the zero address was allowed")
	}
}

func TestParseAllowList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		bad  bool
	}{
		{"", nil, false},
		{" , ", nil, false},
		{"127.0.0.0/8,::1/128", []string{"127.0.0.0/8", "::1/128"}, false},
		{"10.1.2.3/8", []string{"10.0.0.0/8"}, false},
		{"127.0.0.1", nil, true},
		{"localhost/8", nil, true},
		{"10.0.0.0/33", nil, true},
		{"127.0.0.0/8,nonsense", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseAllowList(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("%q: got %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("%q: got %v, want %v", tt.in, got, tt.want)
			continue
		}
		for i := range got {
			if got[i].String() != tt.want[i] {
				t.Errorf("%q: got %v, want %v", tt.in, got, tt.want)
			}
		}
	}
}

// The policy runs at dial time, on the resolved address: a name that
// resolves to loopback is refused although the name itself looks harmless.
func TestDialerChecksResolvedAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	for _, host := range []string{"127.0.0.1", "localhost"} {
		_, err := NewPolicy(nil).Dialer(time.Second).DialContext(ctx, "tcp", net.JoinHostPort(host, port))
		if !IsRefused(err) {
			t.Errorf("dial %s with no allow list: %v, want a refusal", host, err)
		}
	}
	allow, _ := ParseAllowList("127.0.0.0/8,::1/128")
	c, err := NewPolicy(allow).Dialer(time.Second).DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		t.Fatalf("dial allowed loopback: %v", err)
	}
	c.Close()
	if IsRefused(errors.New("connection refused")) {
		t.Error("IsRefused took a network error for the policy's refusal")
	}
}
