package testenv

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP connections from a loopback port to a target, and can
// freeze: stop forwarding in both directions while keeping every
// connection open, as a network path that silently drops packets does. It
// can also refuse connections, or cut each one as soon as it is accepted.
type Proxy struct {
	t      testing.TB
	target string
	addr   string
	ln     net.Listener

	mu     sync.Mutex
	frozen bool
	thawed *sync.Cond
	conns  []net.Conn
	wg     sync.WaitGroup
	// accepted counts connections; the holdAt-th has its close held.
	accepted int
	holdAt   int
	held     chan struct{}
	cut      bool
	refusing bool
}

// StartProxy forwards a free loopback port to target (host:port) until t
// ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, target: target, addr: ln.Addr().String(), ln: ln}
	p.thawed = sync.NewCond(&p.mu)
	p.wg.Go(func() { p.accept(ln) })
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.addr }

// Refuse closes the proxy's port: connections are refused until Listen.
func (p *Proxy) Refuse() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.refusing {
		p.refusing = true
		_ = p.ln.Close()
	}
}

// Listen opens the proxy's port again after Refuse.
func (p *Proxy) Listen() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.refusing {
		return
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Errorf("proxy: listening on %s again: %v", p.addr, err)
		return
	}
	p.ln, p.refusing = ln, false
	p.wg.Go(func() { p.accept(ln) })
}

// Cut makes the proxy close each new connection as soon as it accepts it,
// or, with false, forward them again.
func (p *Proxy) Cut(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = on
}

// Freeze stops forwarding: bytes read from either side are held until Thaw.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = true
}

// Thaw forwards again, starting with what was held.
func (p *Proxy) Thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = false
	p.thawed.Broadcast()
}

// HoldClose keeps the n-th connection (from 1) open toward its client
// after the target has closed it, until the test ends: the client sees a
// receiver that took everything it sent and never answered. The channel is
// closed when the target has closed that connection.
func (p *Proxy) HoldClose(n int) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holdAt, p.held = n, make(chan struct{})
	return p.held
}

func (p *Proxy) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.accepted++
		var held chan struct{}
		if p.accepted == p.holdAt {
			held = p.held
		}
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(u, c, nil) })
		p.wg.Go(func() { p.pipe(c, u, held) })
	}
}

// pipe copies from src to dst, waiting while the proxy is frozen. When src
// ends it closes dst, or, if held is not nil, closes held instead and
// leaves dst open.
func (p *Proxy) pipe(dst, src net.Conn, held chan struct{}) {
	defer func() {
		if held != nil {
			close(held)
			return
		}
		dst.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.frozen {
				p.thawed.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				_ = src.Close()
			}
			return
		}
	}
}

func (p *Proxy) close() {
	p.Refuse()
	p.Thaw()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
