package serving

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
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

// TestBodyMemoryBound: while uploads hold MaxBodyMemory between them, a
// further request is answered 503 overloaded at once, before its body is
// read; once they end, their memory is given back and requests succeed.
func TestBodyMemoryBound(t *testing.T) {
	ts := startServer(t, Config{MaxBodyBytes: 4000, MaxBodyMemory: 6000}, tinyModel(t, 16, 1, "v1"), nil)
	img := pngBytes(t, 16, 16)
	// A slow upload that declares 4000 bytes and sends a few: it holds a
	// 4000-byte reservation while it is being read.
	slow, err := net.Dial("tcp", ts.ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST /v1/models/default:predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\nContent-Length: 4000\r\n\r\n")
	slow.Write(img[:10])
	waitFor(t, "the slow upload's reservation", func() bool { return ts.bodyBytes.Load() == 4000 })

	// 4000 + 4000 > 6000: refused without reading the body.
	big := append(slices.Clone(img), make([]byte, 4000-len(img))...)
	r := do(t, ts.ts.Client(), http.MethodPost, ts.predictURL(), "", "", big)
	if e := errorOf(t, r); r.status != http.StatusServiceUnavailable || e.Code != "overloaded" || r.header.Get("Retry-After") != "1" ||
		!strings.Contains(e.Error, "6000 bytes") {
		t.Fatalf("a body past the memory bound: %d %+v Retry-After %q, want 503 overloaded naming the bound", r.status, e, r.header.Get("Retry-After"))
	}
	// A small one still fits beside the slow upload.
	if r := do(t, ts.ts.Client(), http.MethodPost, ts.predictURL(), "", "", img); r.status != http.StatusOK {
		t.Fatalf("a small body beside the slow upload: %d %s", r.status, r.body)
	}
	slow.Close()
	waitFor(t, "the slow upload's memory to be given back", func() bool { return ts.bodyBytes.Load() == 0 })
	if r := do(t, ts.ts.Client(), http.MethodPost, ts.predictURL(), "", "", big); r.status != http.StatusOK {
		t.Fatalf("the large body after the slow upload ended: %d %s", r.status, r.body)
	}
	// Given back after the decode, before the answer; on an error answer
	// only after it is written, so wait rather than read it once.
	waitFor(t, "every reservation to be given back", func() bool { return ts.bodyBytes.Load() == 0 })
}

// TestSlowUploadDoesNotHoldBatches: a request still uploading its body is
// not "arriving" yet, so a complete request does not wait MaxWait (an
// hour here) for it to join its batch.
func TestSlowUploadDoesNotHoldBatches(t *testing.T) {
	ts := startServer(t, Config{MaxBatch: 8, MaxWait: time.Hour}, tinyModel(t, 16, 1, "v1"), nil)
	img := pngBytes(t, 16, 16)
	slow, err := net.Dial("tcp", ts.ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST /v1/models/default:predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n", len(img))
	slow.Write(img[:10])
	waitFor(t, "the slow upload to start", func() bool { return ts.bodyBytes.Load() == int64(len(img)) })
	done := make(chan response, 1)
	go func() { done <- do(t, ts.ts.Client(), http.MethodPost, ts.predictURL(), "", "", img) }()
	if r := recv(t, done, "the complete request's answer"); r.status != http.StatusOK {
		t.Fatalf("status %d %s", r.status, r.body)
	}
}
