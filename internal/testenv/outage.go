package testenv

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Outage is a TCP proxy in front of a service, so that a test can take the
// service away from the code under test (and bring it back) without
// touching the real server other tests share.
type Outage struct {
	t      testing.TB
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
}

// PostgresOutage starts a proxy to the server of the PostgreSQL URL u (one
// from PostgresSchema) and returns it with u pointed at the proxy.
func PostgresOutage(t testing.TB, u string) (*Outage, string) {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatalf("PostgresOutage: %v", err)
	}
	o := &Outage{t: t, target: parsed.Host, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("PostgresOutage: %v", err)
	}
	o.addr = ln.Addr().String()
	o.serve(ln)
	t.Cleanup(o.Down)
	parsed.Host = o.addr
	return o, parsed.String()
}

// Down takes the service away: new connections are refused and open ones
// are cut, as when the server stops or the network drops.
func (o *Outage) Down() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ln != nil {
		_ = o.ln.Close()
		o.ln = nil
	}
	for c := range o.conns {
		_ = c.Close()
		delete(o.conns, c)
	}
}

// Up brings the service back on the same address.
func (o *Outage) Up() {
	o.t.Helper()
	var err error
	for range 50 { // the port may linger for a moment after Down
		var ln net.Listener
		if ln, err = net.Listen("tcp", o.addr); err == nil {
			o.serve(ln)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	o.t.Fatalf("Outage.Up: listen on %s again: %v", o.addr, err)
}

func (o *Outage) serve(ln net.Listener) {
	o.mu.Lock()
	o.ln = ln
	o.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go o.forward(c)
		}
	}()
}

func (o *Outage) forward(c net.Conn) {
	up, err := net.Dial("tcp", o.target)
	if err != nil {
		_ = c.Close()
		return
	}
	o.mu.Lock()
	if o.ln == nil { // went down meanwhile
		o.mu.Unlock()
		_ = c.Close()
		_ = up.Close()
		return
	}
	o.conns[c], o.conns[up] = struct{}{}, struct{}{}
	o.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	_ = c.Close()
	_ = up.Close()
	o.mu.Lock()
	delete(o.conns, c)
	delete(o.conns, up)
	o.mu.Unlock()
}
