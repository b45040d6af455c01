package fakevendor

// Controls is what every vendor fake offers tests besides its vendor's own
// helpers: where it listens, faults to inject, what it was sent and how
// often its rate limit refused. A fake embeds it:
//
//	type Fake struct {
//		fakevendor.Controls
//		…
//	}
//
//	srv := fakevendor.New(t)
//	f := &Fake{Controls: srv.Controls()}
type Controls struct{ s *Server }

// Controls returns the controls of s, for a fake to embed.
func (s *Server) Controls() Controls { return Controls{s: s} }

// URL is the fake's base URL (http://127.0.0.1:port).
func (c Controls) URL() string { return c.s.URL }

// Inject makes the next n requests meet fault.
func (c Controls) Inject(n int, fault Fault) { c.s.Inject(n, fault) }

// Always makes every request meet fault (nil: back to normal).
func (c Controls) Always(fault Fault) { c.s.Always(fault) }

// PassThrough is a fault that answers as the fake normally does (without
// the credential check or rate limit), to let requests through ahead of
// an injected fault.
func (c Controls) PassThrough() Fault { return c.s.PassThrough() }

// Calls returns what the fake was sent, in order.
func (c Controls) Calls() []Call { return c.s.Calls() }

// Limited counts the requests the fake's rate limit refused.
func (c Controls) Limited() int { return c.s.Limited() }

// RateLimitPath gives the endpoint at path a limit of its own (see
// Server.RateLimitPath).
func (c Controls) RateLimitPath(path string, perSecond float64, burst int) {
	c.s.RateLimitPath(path, perSecond, burst)
}

// Refused counts the requests whose credentials the fake refused (faults
// injected aside).
func (c Controls) Refused() int {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.s.refused
}

// OtherAccount makes the fake another account of its vendor: each
// credential it checks (Auth.Keys) changes to another of the same shape,
// and Config then carries the new ones. It returns how many changed: 0
// when the fake lists none.
func (c Controls) OtherAccount() int {
	for _, k := range c.s.keys {
		k.Set(otherKey(k.Get()))
	}
	return len(c.s.keys)
}

// Answers are how the fake's vendor answers what every vendor does: its
// own 429 (Vendor.TooMany), its refusal of credentials (Auth.Refuse) and
// the credentials it accepts now (Auth.Keys). connectortest's cases take
// them as their defaults.
type Answers struct {
	TooMany, Refused Fault
	Secrets          []string
}

// Answers are the fake's Answers.
func (c Controls) Answers() Answers {
	c.s.mu.Lock()
	a := Answers{TooMany: c.s.tooMany, Refused: c.s.unauthed}
	keys := c.s.keys
	c.s.mu.Unlock()
	for _, k := range keys {
		if v := k.Get(); v != "" {
			a.Secrets = append(a.Secrets, v)
		}
	}
	return a
}

// Requests counts the requests the fake received.
func (c Controls) Requests() int { return c.s.Requests() }

// Polls reads an Options.Polls value: 0 means def, a negative value means
// none (the first status poll finds the job finished).
func Polls(n, def int) int {
	switch {
	case n == 0:
		return def
	case n < 0:
		return 0
	}
	return n
}
