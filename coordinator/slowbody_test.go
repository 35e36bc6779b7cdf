package coordinator

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSlowBodiesGiveSlotsBack fills every in-flight slot of a real server
// with requests that declare a body and send one byte of it: each must be
// answered (its body too slow) instead of holding its slot for good, and a
// worker's heartbeat must then be served. JSON bodies, a dataset upload
// and a blob upload are paced alike.
func TestSlowBodiesGiveSlotsBack(t *testing.T) {
	const slots = 4
	c := newCluster(t, 1, func(cfg *Config) {
		cfg.limits = httpLimits{inFlight: slots, bodyGrace: 500 * time.Millisecond, bodyMinRate: 1 << 10}
	})
	addr := c.nodes[0].srv.HTTPAddr()
	zeros := "sha256:" + strings.Repeat("0", 64)
	requests := []string{
		"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
		"POST /v1/workers/register HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
		"POST /v1/datasets/upload?name=d HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nA",
		"PUT /v1/blobs/" + zeros + " HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nA",
	}
	conns := make([]net.Conn, len(requests))
	for i, req := range requests {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		conns[i] = conn
	}
	for i, conn := range conns {
		// Generous: the server answers after about bodyGrace.
		conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%.40q: no answer: %v", requests[i], err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode > 499 {
			t.Fatalf("%.40q: status %d %s, want 4xx", requests[i], resp.StatusCode, body)
		}
		t.Logf("%.40q: %d %s", requests[i], resp.StatusCode, body)
	}
	resp, err := http.Post("http://"+addr+"/v1/workers/register", "application/json",
		strings.NewReader(`{"id":"w1","addr":"127.0.0.1:1","meta":{"cores":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(resp.Body)
		t.Fatalf("heartbeat after the slow bodies: status %d %s", resp.StatusCode, data)
	}
}
