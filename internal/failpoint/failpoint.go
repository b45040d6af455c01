// Package failpoint lets crash tests stop a real Lethe process at chosen
// points in its flow. It is off unless LETHE_FAILPOINTS is set; a nil *Set
// does nothing and costs a nil check.
package failpoint

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Set holds failpoints and the probability that each crashes the process
// when reached.
type Set struct {
	mu     sync.Mutex
	points map[string]float64
	rnd    *rand.Rand
	out    io.Writer
	exit   func(code int)
}

// Parse reads "point=probability,point=probability". An empty spec gives a
// nil Set.
func Parse(spec string, stderr io.Writer) (*Set, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	s := &Set{points: map[string]float64{}, rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), out: stderr, exit: os.Exit}
	for _, part := range strings.Split(spec, ",") {
		name, prob, ok := strings.Cut(strings.TrimSpace(part), "=")
		p, err := strconv.ParseFloat(prob, 64)
		if !ok || name == "" || err != nil || p < 0 || p > 1 {
			return nil, fmt.Errorf("failpoints: %q: want name=probability (0..1)", part)
		}
		s.points[name] = p
	}
	return s, nil
}

// Hit crashes the process, with the point's probability, as abruptly as
// os.Exit allows: no deferred cleanup, no graceful shutdown.
func (s *Set) Hit(point string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	p, ok := s.points[point]
	crash := ok && s.rnd.Float64() < p
	s.mu.Unlock()
	if crash {
		fmt.Fprintf(s.out, "failpoint %s: crashing\n", point)
		s.exit(86)
	}
}
