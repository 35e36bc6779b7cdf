package artifact

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// node is one coordinator's artifact store behind a real HTTP server on
// 127.0.0.1, which can be stopped and started again on a new port.
type node struct {
	t     testing.TB
	store *Store
	rep   *Replicator
	srv   *httptest.Server
	puts  atomic.Int64 // PUT requests served
}

func testReplicatorConfig() ReplicatorConfig {
	return ReplicatorConfig{
		Client:       ClientConfig{DialTimeout: 2 * time.Second, ResponseHeaderTimeout: 10 * time.Second, RequestTimeout: 30 * time.Second},
		Attempts:     2,
		RetryBackoff: time.Millisecond,
		Logger:       quietLog(),
	}
}

func newNode(t testing.TB) *node {
	t.Helper()
	n := &node{t: t, store: openTestStore(t)}
	n.rep = NewReplicator(n.store, testReplicatorConfig())
	t.Cleanup(func() { n.rep.Client().CloseIdleConnections() })
	n.start()
	return n
}

// start serves the node's store on a fresh port.
func (n *node) start() {
	h := NewHandler(n.store, HandlerConfig{Logger: quietLog()})
	mux := http.NewServeMux()
	mux.Handle(BlobsPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			n.puts.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	n.srv = httptest.NewServer(mux)
	n.t.Cleanup(n.srv.Close)
}

// stop closes the node's server; its address then refuses connections.
func (n *node) stop() { n.srv.Close() }

func (n *node) url() string { return n.srv.URL }

func urls(nodes ...*node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.url())
	}
	return out
}

func TestReplicateReachesAllPeers(t *testing.T) {
	ctx := context.Background()
	a, b, c := newNode(t), newNode(t), newNode(t)
	for _, size := range []int{0, 1, 3<<20 + 5} {
		data := randomBytes(20, size)
		d, _, err := a.store.Put(ctx, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.rep.Replicate(ctx, d, urls(b, c)); err != nil {
			t.Fatal(err)
		}
		for _, n := range []*node{b, c} {
			if err := n.store.Verify(ctx, d); err != nil {
				t.Fatalf("peer %s: %v", n.url(), err)
			}
		}
	}
	// Peers that have a blob are not sent it again; duplicates and a
	// host:port address without a scheme are fine.
	before := b.puts.Load() + c.puts.Load()
	d, _, _ := a.store.Put(ctx, bytes.NewReader(randomBytes(20, 1)))
	peers := append(urls(b, c), b.url(), strings.TrimPrefix(c.url(), "http://"))
	if err := a.rep.Replicate(ctx, d, peers); err != nil {
		t.Fatal(err)
	}
	if after := b.puts.Load() + c.puts.Load(); after != before {
		t.Fatalf("%d PUTs for a blob the peers had", after-before)
	}
	if err := a.rep.Replicate(ctx, d, nil); err != nil {
		t.Fatalf("Replicate to no peers: %v", err)
	}
	if err := a.rep.Replicate(ctx, DigestOf([]byte("absent")), urls(b)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Replicate of a missing blob = %v, want ErrNotFound", err)
	}
}

func TestReplicateFailsNamingDownPeer(t *testing.T) {
	ctx := context.Background()
	a, b, c := newNode(t), newNode(t), newNode(t)
	c.stop()
	data := randomBytes(21, 1<<20)
	d, _, err := a.store.Put(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	err = a.rep.Replicate(ctx, d, urls(b, c))
	var rerr *ReplicateError
	if !errors.As(err, &rerr) {
		t.Fatalf("Replicate = %v, want a *ReplicateError", err)
	}
	if got := rerr.FailedPeers(); !slices.Equal(got, []string{c.url()}) {
		t.Fatalf("failed peers %v, want [%s]", got, c.url())
	}
	msg := err.Error()
	if !strings.Contains(msg, c.url()) || strings.Contains(msg, b.url()+":") || strings.Contains(msg, b.url()+"/") {
		t.Fatalf("error %q should name %s only", err, c.url())
	}
	if err := b.store.Verify(ctx, d); err != nil {
		t.Fatalf("the live peer should have the blob: %v", err)
	}
}

func TestReplicateRefusesCorruptLocalBlob(t *testing.T) {
	ctx := context.Background()
	a, b := newNode(t), newNode(t)
	data := randomBytes(22, 50_000)
	d, _, err := a.store.Put(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := ParseDigest(d)
	corrupt := slices.Clone(data)
	corrupt[0] ^= 1
	if err := a.store.Delete(d); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.store.path(h), corrupt, 0o644); err != nil {
		t.Fatal(err)
	}
	err = a.rep.Replicate(ctx, d, urls(b))
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Replicate of a corrupt blob = %v, want ErrDigestMismatch", err)
	}
	if b.store.Has(d) {
		t.Fatal("peer stored a corrupt blob")
	}
	if n := b.puts.Load(); n != 1 {
		t.Fatalf("%d PUTs, want 1 (a mismatch is not retried)", n)
	}
}

func TestCatchUpAfterDowntime(t *testing.T) {
	ctx := context.Background()
	a, b, c := newNode(t), newNode(t), newNode(t)
	c.stop()
	// While c is down, a writes blobs; replication to c fails, to b works.
	var written []string
	for i, size := range []int{0, 10, 2<<20 + 1} {
		d, _, err := a.store.Put(ctx, bytes.NewReader(randomBytes(uint64(30+i), size)))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.rep.Replicate(ctx, d, urls(b, c)); err == nil {
			t.Fatal("Replicate succeeded with a peer down")
		}
		written = append(written, d)
	}
	// c comes back (on a new port) and catches up on what the state
	// references, from a peer that is down, one that is up, and a.
	c.start()
	missing, err := c.store.Missing(ctx, written)
	if err != nil || len(missing) != len(written) {
		t.Fatalf("Missing = %v, %v", missing, err)
	}
	dead := newNode(t)
	dead.stop()
	if err := c.rep.CatchUp(ctx, written, urls(dead, b, a)); err != nil {
		t.Fatal(err)
	}
	for _, d := range written {
		if err := c.store.Verify(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if missing, _ := c.store.Missing(ctx, written); len(missing) != 0 {
		t.Fatalf("still missing %v", missing)
	}
	// c now serves them to others too.
	if err := a.rep.Replicate(ctx, written[2], urls(c)); err != nil {
		t.Fatal(err)
	}
}

func TestFetchFailures(t *testing.T) {
	ctx := context.Background()
	a, b := newNode(t), newNode(t)
	data := randomBytes(40, 100_000)
	d := DigestOf(data)
	// A peer that answers with other bytes than asked for.
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(data[1:])
	}))
	defer liar.Close()

	err := a.rep.Fetch(ctx, d, urls(b))
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), b.url()) {
		t.Fatalf("Fetch from a peer without the blob = %v, want ErrNotFound naming it", err)
	}
	if err := a.rep.Fetch(ctx, d, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Fetch from no peers = %v, want ErrNotFound", err)
	}
	err = a.rep.Fetch(ctx, d, []string{liar.URL})
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Fetch from a lying peer = %v, want ErrDigestMismatch", err)
	}
	if files := storeFiles(t, a.store); len(files) != 0 {
		t.Fatalf("failed fetches left %v", files)
	}
	if err := a.rep.Fetch(ctx, "sha256:0", urls(b)); !errors.Is(err, ErrBadDigest) {
		t.Fatalf("Fetch of a bad digest = %v, want ErrBadDigest", err)
	}
	// The liar first, then a peer with the right bytes.
	if _, err := b.store.PutExpected(ctx, bytes.NewReader(data), d); err != nil {
		t.Fatal(err)
	}
	if err := a.rep.Fetch(ctx, d, []string{liar.URL, b.url()}); err != nil {
		t.Fatal(err)
	}
	if err := a.store.Verify(ctx, d); err != nil {
		t.Fatal(err)
	}
}

func TestReplicateCanceled(t *testing.T) {
	a := newNode(t)
	d, _, err := a.store.Put(context.Background(), bytes.NewReader(randomBytes(50, 1000)))
	if err != nil {
		t.Fatal(err)
	}
	// A peer that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			cancel() // the request has reached the peer
			io.Copy(io.Discard, conn)
			conn.Close()
		}
	}()
	err = a.rep.Replicate(ctx, d, []string{ln.Addr().String()})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Replicate = %v, want context.Canceled", err)
	}
	cancel()
}

func BenchmarkReplicate(b *testing.B) {
	const size = 32 << 20
	ctx := context.Background()
	a, p1, p2 := newNode(b), newNode(b), newNode(b)
	d, _, err := a.store.Put(ctx, bytes.NewReader(randomBytes(60, size)))
	if err != nil {
		b.Fatal(err)
	}
	peers := urls(p1, p2)
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		if err := a.rep.Replicate(ctx, d, peers); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		for _, p := range []*node{p1, p2} {
			if err := p.store.Delete(d); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
}
