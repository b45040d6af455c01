package httpapi

import (
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
)

// How much of an oversize body is read and thrown away after its 413 so
// that the client, still sending, reads the answer instead of a reset.
const (
	drainMax     = 8 << 20
	drainTimeout = 3 * time.Second
)

// limitBodies answers an oversize body with 413 the way a client can read
// it. A Content-Length over max is refused before a byte is read, so a
// client waiting on "Expect: 100-continue" gets the 413 and never a 100
// Continue. Whenever a 413 is sent (here, or by a handler whose own,
// smaller limit was hit while streaming), the connection is marked
// "Connection: close" and what the client is still sending is read and
// discarded, up to drainMax or drainTimeout, before it is closed: closing
// a socket with unread data makes the kernel send a reset, and the client
// then loses the 413 it was about to read.
func limitBodies(max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := &countedBody{ReadCloser: r.Body}
		r.Body = body
		lw := &limitWriter{ResponseWriter: w}
		if r.ContentLength > max {
			writeErr(lw, erasure.Errorf(erasure.ETooLarge, "the body is larger than %d bytes", max))
		} else {
			r.Body = http.MaxBytesReader(w, body, max)
			next.ServeHTTP(lw, r)
		}
		if !lw.tooLarge {
			return
		}
		// A client waiting for 100 Continue that got none has not sent
		// the body: there is nothing to drain, and Go closes the
		// connection itself.
		if body.n == 0 && strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.Flush() // the client may read the 413 while it sends
		_ = rc.SetReadDeadline(time.Now().Add(drainTimeout))
		_, _ = io.CopyN(io.Discard, body.ReadCloser, drainMax)
	})
}

// countedBody counts what the handler read of a body.
type countedBody struct {
	io.ReadCloser
	n int64
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// limitWriter notes a 413 and asks for the connection to be closed after
// it: the rest of that body is not worth reading as a next request.
type limitWriter struct {
	http.ResponseWriter
	tooLarge, wrote bool
}

func (w *limitWriter) WriteHeader(code int) {
	if !w.wrote && code == http.StatusRequestEntityTooLarge {
		w.tooLarge = true
		w.Header().Set("Connection", "close")
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *limitWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *limitWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
