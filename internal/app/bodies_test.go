package app_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/testenv"
)

// TestOversizeBodiesGet413: a 3 MB upload, as curl sends it (Expect:
// 100-continue above 1 KiB), gets a 413 the client can read, 20 times out
// of 20: refused from Content-Length before any 100 Continue, and when
// streamed without a length, answered after the limit with the rest read
// and thrown away, never a connection reset.
func TestOversizeBodiesGet413(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	in := newInstance(t, ns.ClientURL(), tg.connectorsYAML(), "")
	in.serve(t)
	body := `{"subject":{"email":"a@example.com"},"jurisdiction":"gdpr","pad":"` + strings.Repeat("x", 3<<20) + `"}`
	head := func(path string, extra ...string) string {
		h := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n", path, in.addr, in.adminToken)
		return h + strings.Join(extra, "") + "\r\n"
	}

	for _, tc := range []struct {
		name string
		send func(t *testing.T, c net.Conn, br *bufio.Reader)
	}{
		{"Content-Length with Expect: 100-continue", func(t *testing.T, c net.Conn, br *bufio.Reader) {
			mustWrite(t, c, head("/v1/requests", fmt.Sprintf("Content-Length: %d\r\n", len(body)), "Expect: 100-continue\r\n"))
			// curl waits for 100 Continue or an answer: the answer must come.
		}},
		{"Content-Length, body sent at once", func(t *testing.T, c net.Conn, br *bufio.Reader) {
			mustWrite(t, c, head("/v1/requests", fmt.Sprintf("Content-Length: %d\r\n", len(body)))+body)
		}},
		{"chunked with Expect: 100-continue", func(t *testing.T, c net.Conn, br *bufio.Reader) {
			mustWrite(t, c, head("/v1/requests", "Transfer-Encoding: chunked\r\n", "Expect: 100-continue\r\n"))
			line, err := br.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
				t.Fatalf("before a streamed body: %q, %v; want 100 Continue", line, err)
			}
			if _, err := br.ReadString('\n'); err != nil { // the blank line after it
				t.Fatal(err)
			}
			var b bytes.Buffer
			for rest := body; rest != ""; {
				n := min(len(rest), 32<<10)
				fmt.Fprintf(&b, "%x\r\n%s\r\n", n, rest[:n])
				rest = rest[n:]
			}
			b.WriteString("0\r\n\r\n")
			mustWrite(t, c, b.String())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := 0
			for i := range 20 {
				c, err := net.Dial("tcp", in.addr)
				if err != nil {
					t.Fatal(err)
				}
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				br := bufio.NewReader(c)
				tc.send(t, c, br)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Errorf("try %d: no answer: %v", i, err)
					c.Close()
					continue
				}
				b, err := io.ReadAll(resp.Body)
				c.Close()
				switch {
				case err != nil:
					t.Errorf("try %d: the answer was cut: %v", i, err)
				case resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), `"too_large"`):
					t.Errorf("try %d: %d %s, want 413 too_large", i, resp.StatusCode, b)
				case !resp.Close:
					t.Errorf("try %d: a 413 that leaves the connection open for the rest of the body", i)
				default:
					got++
				}
			}
			if got != 20 {
				t.Errorf("%d of 20 oversize uploads got their 413", got)
			}
		})
	}

	// The limit is the API's: a body just under it is read as usual.
	if code := call(t, "POST", "http://"+in.addr+"/v1/requests", in.adminToken, `{"subject":{"email":"ok@example.com"},"jurisdiction":"gdpr"}`, nil); code != http.StatusCreated {
		t.Errorf("a normal filing after the oversize ones = %d", code)
	}
}

func mustWrite(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("sending: %v (the server reset the connection?)", err)
	}
}
