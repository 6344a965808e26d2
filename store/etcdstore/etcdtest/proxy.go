package etcdtest

import (
	"io"
	"net"
	"sync"
)

// proxy forwards TCP connections from a listener to a member's client port. Pausing it drops
// every connection at once, as a crashed member would: without it, stopping an embedded member
// waits seconds for its clients' long-lived streams (watches) to end. A paused proxy keeps its
// port (so that no other process takes it before the member restarts) and closes what it
// accepts, as a port with nothing listening refuses connections.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	paused bool
	wg     sync.WaitGroup
}

// listenProxy starts a proxy on addr (host:port) to target, paused.
func listenProxy(addr, target string) (*proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{}), paused: true}
	p.wg.Go(p.accept)
	return p, nil
}

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

// track registers c, or closes it and returns false while the proxy is paused.
func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) serve(c net.Conn) {
	if !p.track(c) {
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		p.drop(c)
		return
	}
	if !p.track(up) {
		p.drop(c)
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = io.Copy(up, c); p.drop(up) })
	wg.Go(func() { _, _ = io.Copy(c, up); p.drop(c) })
	wg.Wait()
	p.drop(c)
	p.drop(up)
}

func (p *proxy) drop(c net.Conn) {
	_ = c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// pause drops every connection, and closes those accepted until resume.
func (p *proxy) pause() {
	p.mu.Lock()
	p.paused = true
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
	p.mu.Unlock()
}

// resume forwards the connections accepted from now on.
func (p *proxy) resume() {
	p.mu.Lock()
	p.paused = false
	p.mu.Unlock()
}

// close stops accepting and drops every connection.
func (p *proxy) close() {
	_ = p.ln.Close()
	p.pause()
	p.wg.Wait()
}
