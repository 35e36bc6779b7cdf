package serving

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunStartsNoPassAfterCancel: a job the loop took but had not run when
// its context ended (here: waiting for a request still arriving) is
// answered as shutting down, and no forward pass starts.
func TestRunStartsNoPassAfterCancel(t *testing.T) {
	var batches atomic.Int32
	m := tinyModel(t, 16, 1, "v1")
	ts := startServer(t, Config{MaxBatch: 4, MaxWait: time.Hour}, m, func(int) { batches.Add(1) })
	ts.arriving.Add(1) // a request on its way: the loop waits for it
	defer ts.arriving.Add(-1)
	m.acquire() // the job's hold, released by the loop
	j := &job{ctx: context.Background(), model: m, input: make([]byte, 16*16*3), done: make(chan jobResult, 1)}
	if err := ts.enqueue(j); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the loop to take the job", func() bool { return len(ts.queue) == 0 })
	ts.stop(t)
	if r := recv(t, j.done, "the job's answer"); !errors.Is(r.err, errShuttingDown) {
		t.Errorf("job taken before the context ended: %v, want %v", r.err, errShuttingDown)
	}
	if n := batches.Load(); n != 0 {
		t.Errorf("%d forward passes after the context ended, want 0", n)
	}
}

// TestAbortedUploadIs499: a client that breaks off mid-upload is counted as
// 499 (it went away), not as a 400 bad_body it never reads.
func TestAbortedUploadIs499(t *testing.T) {
	ts := startServer(t, Config{}, tinyModel(t, 16, 1, "v1"), nil)
	img := pngBytes(t, 16, 16)
	conn, err := net.Dial("tcp", ts.ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/models/default:predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n", len(img)+1000)
	conn.Write(img)
	conn.Close()
	waitFor(t, "the aborted upload to be counted", func() bool {
		return metricValue(ts.metricsText(t), `trainctl_serving_requests_total{code="499"}`) == 1
	})
	if v := metricValue(ts.metricsText(t), `trainctl_serving_requests_total{code="400"}`); v != -1 {
		t.Errorf("requests_total{code=\"400\"} = %v after an aborted upload, want none", v)
	}
	// A complete request is still answered.
	if r := do(t, ts.ts.Client(), http.MethodPost, ts.predictURL(), "", "", img); r.status != http.StatusOK {
		t.Fatalf("predict: %d %s", r.status, r.body)
	}
}
