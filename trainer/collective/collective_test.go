package collective

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// listeners binds n loopback listeners and returns them with their
// addresses.
func listeners(t testing.TB, n int) ([]net.Listener, []string) {
	t.Helper()
	lns := make([]net.Listener, n)
	addrs := make([]string, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i], addrs[i] = ln, ln.Addr().String()
	}
	return lns, addrs
}

// ring connects n ranks over loopback, each config adjusted by tune (may
// be nil), and closes them at the end of the test.
func ring(t testing.TB, n int, tune func(*Config)) []*Comm {
	t.Helper()
	lns, addrs := listeners(t, n)
	comms := make([]*Comm, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		cfg := Config{Rank: r, Size: n, Peers: addrs, Listener: lns[r], Secret: testSecret, Session: "job/attempt-1",
			Timeout: 5 * time.Second, ConnectTimeout: 20 * time.Second}
		if tune != nil {
			tune(&cfg)
		}
		wg.Go(func() { comms[r], errs[r] = New(context.Background(), cfg) })
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	t.Cleanup(func() {
		for _, c := range comms {
			c.Close()
		}
	})
	return comms
}

// onEvery runs f on every rank concurrently and returns their errors.
func onEvery(comms []*Comm, f func(r int, c *Comm) error) []error {
	errs := make([]error, len(comms))
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Go(func() { errs[r] = f(r, c) })
	}
	wg.Wait()
	return errs
}

func TestAllReduce(t *testing.T) {
	for n := 1; n <= 8; n++ {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			comms := ring(t, n, func(c *Config) { c.ChunkBytes = 64 }) // 8 elements a frame: many chunks
			rng := rand.New(rand.NewPCG(uint64(n), 1))
			for i, size := range []int{0, 1, n - 1, n, 7, 100, 1000, 4099} {
				for _, op := range []Op{Sum, Max} {
					in := make([][]int64, n)
					want := make([]int64, size)
					for r := range n {
						in[r] = make([]int64, size)
						for j := range size {
							v := int64(rng.Uint64()) // wraps when summed
							in[r][j] = v
							switch {
							case r == 0:
								want[j] = v
							case op == Sum:
								want[j] += v
							default:
								want[j] = max(want[j], v)
							}
						}
					}
					tag := Tag{Step: int64(i), Bucket: int(op)}
					errs := onEvery(comms, func(r int, c *Comm) error { return c.AllReduceInt64(context.Background(), tag, in[r], op) })
					for r, err := range errs {
						if err != nil {
							t.Fatalf("size %d op %d rank %d: %v", size, op, r, err)
						}
						for j := range size {
							if in[r][j] != want[j] {
								t.Fatalf("size %d op %d rank %d element %d = %d, want %d", size, op, r, j, in[r][j], want[j])
							}
						}
					}
				}
			}
		})
	}
}

func TestBroadcast(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5} {
		comms := ring(t, n, func(c *Config) { c.ChunkBytes = 1024 })
		for root := range n {
			for _, size := range []int{0, 1, 5000} {
				src := make([]byte, size)
				rng := rand.New(rand.NewPCG(uint64(size), uint64(root)))
				for i := range src {
					src[i] = byte(rng.Uint32())
				}
				bufs := make([][]byte, n)
				for r := range n {
					bufs[r] = make([]byte, size)
					if r == root {
						copy(bufs[r], src)
					}
				}
				errs := onEvery(comms, func(r int, c *Comm) error {
					return c.Broadcast(context.Background(), Tag{Step: 1}, bufs[r], root)
				})
				for r, err := range errs {
					if err != nil || !bytes.Equal(bufs[r], src) {
						t.Fatalf("N=%d root %d size %d: rank %d: err %v, equal %v", n, root, size, r, err, bytes.Equal(bufs[r], src))
					}
				}
			}
		}
	}
}

// TestStalledPeer: a rank that is alive but never reaches a collective
// makes every other rank fail once the arrival deadline has passed,
// naming it. (A stopped or dead process is TestSIGSTOPPedPeer's and
// TestDeadPeer's.)
func TestStalledPeer(t *testing.T) {
	const timeout = time.Second
	for _, stalled := range []int{0, 2} {
		comms := ring(t, 4, func(c *Config) { c.ArrivalTimeout = timeout })
		start := time.Now()
		errs := onEvery(comms, func(r int, c *Comm) error {
			if r == stalled {
				return nil
			}
			return c.AllReduceInt64(context.Background(), Tag{Step: 7}, make([]int64, 1000), Sum)
		})
		took := time.Since(start)
		for r, err := range errs {
			if r == stalled {
				continue
			}
			var re *RankError
			if !errors.As(err, &re) || re.Rank != stalled || !errors.Is(err, ErrTimeout) {
				t.Fatalf("stalled rank %d: rank %d got %v; want a timeout naming rank %d", stalled, r, err, stalled)
			}
		}
		if took > timeout+2*time.Second {
			t.Fatalf("the ranks failed after %v; the deadline is %v", took, timeout)
		}
		// The ring is broken for good.
		if err := comms[(stalled+1)%4].Barrier(context.Background(), Tag{}); err == nil {
			t.Fatal("a collective succeeded on a broken ring")
		}
	}
}

// TestDeadPeer: a rank whose connections close (a killed process) makes
// the others fail at once, naming it.
func TestDeadPeer(t *testing.T) {
	comms := ring(t, 3, func(c *Config) { c.Timeout = 10 * time.Second })
	comms[1].Close()
	start := time.Now()
	errs := onEvery(comms, func(r int, c *Comm) error {
		if r == 1 {
			return nil
		}
		return c.AllReduceInt64(context.Background(), Tag{}, make([]int64, 100), Sum)
	})
	for _, r := range []int{0, 2} {
		var re *RankError
		if !errors.As(errs[r], &re) || re.Rank != 1 {
			t.Fatalf("rank %d: %v; want an error naming rank 1", r, errs[r])
		}
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("failing took %v", took)
	}
}

func TestMismatch(t *testing.T) {
	tests := []struct {
		name string
		call func(r int, c *Comm) error
	}{
		{"step", func(r int, c *Comm) error {
			return c.AllReduceInt64(context.Background(), Tag{Step: int64(r % 2)}, make([]int64, 10), Sum)
		}},
		{"length", func(r int, c *Comm) error {
			return c.AllReduceInt64(context.Background(), Tag{}, make([]int64, 10+r%2), Sum)
		}},
		{"op", func(r int, c *Comm) error {
			return c.AllReduceInt64(context.Background(), Tag{}, make([]int64, 10), Op(r%2))
		}},
		{"layout", func(r int, c *Comm) error {
			return c.AllReduceInt64(context.Background(), Tag{Layout: uint64(r % 2)}, make([]int64, 10), Sum)
		}},
		{"broadcast vs all-reduce", func(r int, c *Comm) error {
			if r == 1 {
				return c.Broadcast(context.Background(), Tag{}, make([]byte, 80), 0)
			}
			return c.AllReduceInt64(context.Background(), Tag{}, make([]int64, 10), Sum)
		}},
		{"barrier vs all-reduce", func(r int, c *Comm) error {
			if r == 2 {
				return c.Barrier(context.Background(), Tag{})
			}
			return c.AllReduceInt64(context.Background(), Tag{}, make([]int64, 1), Sum)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			comms := ring(t, 3, func(c *Config) { c.Timeout = 2 * time.Second })
			errs := onEvery(comms, tt.call)
			mismatch := 0
			for r, err := range errs {
				var re *RankError
				if !errors.As(err, &re) {
					t.Fatalf("rank %d: %v; want a *RankError", r, err)
				}
				if errors.Is(err, ErrMismatch) {
					mismatch++
				}
			}
			if mismatch == 0 {
				t.Fatalf("no rank reported a mismatch: %v", errs)
			}
		})
	}
}

// TestStrangersRefused connects strangers to a rank's port while the ring
// forms: each is refused and the ring forms and works regardless.
func TestStrangersRefused(t *testing.T) {
	lns, addrs := listeners(t, 3)
	strangers := []struct {
		name string
		talk func(conn net.Conn) error // an error: the handshake failed, refused
	}{
		{"silent", func(net.Conn) error { return nil }},
		{"garbage", func(conn net.Conn) error { conn.Write(bytes.Repeat([]byte{0xff}, 4096)); return nil }},
		{"wrong secret", func(conn net.Conn) error {
			cfg := Config{Rank: 0, Size: 3, Peers: addrs, Secret: []byte("not the secret at all!"), Session: "job/attempt-1"}
			_, err := clientHandshake(conn, &cfg, 1)
			return err
		}},
		{"wrong session", func(conn net.Conn) error {
			cfg := Config{Rank: 0, Size: 3, Peers: addrs, Secret: testSecret, Session: "job/attempt-2"}
			_, err := clientHandshake(conn, &cfg, 1)
			return err
		}},
		{"wrong rank", func(conn net.Conn) error {
			cfg := Config{Rank: 2, Size: 3, Peers: addrs, Secret: testSecret, Session: "job/attempt-1"}
			_, err := clientHandshake(conn, &cfg, 1)
			return err
		}},
	}
	refused := make(chan string, len(strangers))
	for _, s := range strangers {
		conn, err := net.Dial("tcp", addrs[1])
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		go func() {
			if err := s.talk(conn); err != nil {
				refused <- s.name
				return
			}
			conn.SetReadDeadline(time.Now().Add(15 * time.Second))
			if _, err := io.Copy(io.Discard, conn); err == nil || !errors.Is(err, net.ErrClosed) {
				refused <- s.name // the rank closed the connection
			}
		}()
	}
	comms := make([]*Comm, 3)
	errs := onEvery(comms, func(r int, _ *Comm) error {
		var err error
		comms[r], err = New(context.Background(), Config{Rank: r, Size: 3, Peers: addrs, Listener: lns[r], Secret: testSecret,
			Session: "job/attempt-1", Timeout: 5 * time.Second})
		return err
	})
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
		defer comms[r].Close()
	}
	buf := [][]int64{{1}, {2}, {3}}
	errs = onEvery(comms, func(r int, c *Comm) error { return c.AllReduceInt64(context.Background(), Tag{}, buf[r], Sum) })
	for r, err := range errs {
		if err != nil || buf[r][0] != 6 {
			t.Fatalf("rank %d: %v, sum %d", r, err, buf[r][0])
		}
	}
	for range strangers {
		select {
		case name := <-refused:
			t.Logf("refused: %s", name)
		case <-time.After(20 * time.Second):
			t.Fatal("a stranger's connection was not closed")
		}
	}
	// After the ring formed, nobody may connect.
	if conn, err := net.DialTimeout("tcp", addrs[1], time.Second); err == nil {
		conn.Close()
		t.Fatal("a connection to a formed ring's port was accepted")
	}
}

func TestCancel(t *testing.T) {
	comms := ring(t, 2, nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	// Rank 1 never joins: rank 0 waits until its context ends.
	err := comms[0].AllReduceInt64(ctx, Tag{}, make([]int64, 10), Sum)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
		t.Fatalf("err %v after %v; want context.Canceled at once", err, time.Since(start))
	}
}

func TestConfigRejected(t *testing.T) {
	ln, addrs := listeners(t, 1)
	for _, cfg := range []Config{
		{Rank: 0, Size: 0},
		{Rank: 2, Size: 2, Peers: []string{"a:1", "b:1"}, Secret: testSecret},
		{Rank: 0, Size: 2, Peers: []string{"a:1"}, Secret: testSecret},
		{Rank: 0, Size: 1, Peers: addrs, Secret: []byte("short")},
		{Rank: 0, Size: 1, Peers: addrs, Secret: testSecret, ChunkBytes: 7},
		{Rank: 0, Size: 2, Peers: []string{"a:1", "b:1"}, Secret: testSecret},
	} {
		if _, err := New(context.Background(), cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	ln[0].Close()
}

// TestGarbage: bytes that are not a frame make the receiving rank fail
// with ErrCorrupt naming the sender, and the others name it too.
func TestGarbage(t *testing.T) {
	comms := ring(t, 3, func(c *Config) { c.Timeout = 2 * time.Second })
	comms[0].next.Write(bytes.Repeat([]byte{0x5a}, 200))
	errs := onEvery(comms, func(r int, c *Comm) error {
		if r == 0 {
			return nil
		}
		return c.AllReduceInt64(context.Background(), Tag{}, make([]int64, 10), Sum)
	})
	var re *RankError
	if !errors.As(errs[1], &re) || re.Rank != 0 || !errors.Is(errs[1], ErrCorrupt) {
		t.Fatalf("rank 1: %v; want a corrupt frame from rank 0", errs[1])
	}
}
