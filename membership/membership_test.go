package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitTimeout bounds every wait on gossip; generous for -race on a loaded
// 2-core machine, while failure detection itself takes well under a second.
const waitTimeout = 15 * time.Second

// syncBuffer collects a test's logs, printed only if the test fails (the
// members' goroutines may log after the test ends, when t.Log would panic).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	var buf syncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fastConfig returns a config on 127.0.0.1 with a free port and tight
// timeouts: failures are detected in a few hundred milliseconds.
func fastConfig(name string, meta NodeMeta, logger *slog.Logger, join ...string) Config {
	c := DefaultConfig()
	c.NodeName = name
	c.BindAddr = "127.0.0.1"
	c.BindPort = 0
	c.Meta = meta
	c.Join = join
	c.Logger = logger
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.SuspicionMult = 2
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = 500 * time.Millisecond
	c.TCPTimeout = time.Second
	c.JoinRetryInterval = 50 * time.Millisecond
	return c
}

// recorder keeps every event a member delivers.
type recorder struct {
	mu      sync.Mutex
	events  []Event
	changed chan struct{} // closed and replaced on each new event
}

func record(m *Member) *recorder {
	r := &recorder{changed: make(chan struct{})}
	go func() {
		for e := range m.Events() {
			r.mu.Lock()
			r.events = append(r.events, e)
			close(r.changed)
			r.changed = make(chan struct{})
			r.mu.Unlock()
		}
	}()
	return r
}

// waitFor returns the first recorded event matching pred, waiting for it
// until waitTimeout.
func (r *recorder) waitFor(t *testing.T, what string, pred func(Event) bool) Event {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		for _, e := range r.events {
			if pred(e) {
				r.mu.Unlock()
				return e
			}
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("no event %s within %v; got %v", what, waitTimeout, r.snapshot())
		}
	}
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Type.String()+":"+e.Node.Name)
	}
	return out
}

func (r *recorder) has(pred func(Event) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if pred(e) {
			return true
		}
	}
	return false
}

func is(t EventType, name string) func(Event) bool {
	return func(e Event) bool { return e.Type == t && e.Node.Name == name }
}

// eventually waits until cond holds, checking every 10ms, up to waitTimeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		<-tick.C
	}
}

type cluster struct {
	members []*Member
	rec     []*recorder
	metas   []NodeMeta
}

// startCluster starts n members on 127.0.0.1, each joining the previous
// one, and waits until every member sees all n alive.
func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	logger := testLogger(t)
	c := &cluster{}
	for i := range n {
		meta := NodeMeta{Role: RoleWorker, Cores: 4 * (i + 1), GPUs: i, Spot: i%2 == 1,
			Zone: fmt.Sprintf("zone-%d", i), Version: "test", APIAddr: fmt.Sprintf("127.0.0.1:%d", 18000+i)}
		if i == 0 {
			meta = NodeMeta{Role: RoleCoordinator, Cores: 2, Version: "test", RaftAddr: "127.0.0.1:18300"}
		}
		var join []string
		if i > 0 {
			join = []string{c.members[i-1].Addr()}
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		m, err := Start(ctx, fastConfig(fmt.Sprintf("n%d", i), meta, logger, join...))
		cancel()
		if err != nil {
			t.Fatalf("start n%d: %v", i, err)
		}
		t.Cleanup(func() { _ = m.Shutdown() })
		c.members = append(c.members, m)
		c.rec = append(c.rec, record(m))
		c.metas = append(c.metas, meta)
	}
	for i, m := range c.members {
		eventually(t, fmt.Sprintf("n%d to see %d alive members", i, n), func() bool {
			alive := 0
			for _, node := range m.Members() {
				if node.State == StateAlive {
					alive++
				}
			}
			return alive == n
		})
	}
	return c
}

func TestJoinAndMetadata(t *testing.T) {
	c := startCluster(t, 3)
	for i, m := range c.members {
		// Each member's own join is its first event.
		self := c.rec[i].waitFor(t, "self join", func(Event) bool { return true })
		if self.Type != EventJoin || self.Node.Name != m.Name() {
			t.Errorf("n%d: first event %s:%s, want its own join", i, self.Type, self.Node.Name)
		}
		members := m.Members()
		if len(members) != 3 {
			t.Fatalf("n%d sees %d members, want 3", i, len(members))
		}
		for j, node := range members { // sorted by name: n0, n1, n2
			if node.Name != fmt.Sprintf("n%d", j) || node.MetaErr != nil || node.Meta != c.metas[j] {
				t.Errorf("n%d sees %+v, want n%d with %+v", i, node, j, c.metas[j])
			}
			if node.Addr != c.members[j].Addr() {
				t.Errorf("n%d sees n%d at %s, want %s", i, j, node.Addr, c.members[j].Addr())
			}
			e := c.rec[i].waitFor(t, "join of "+node.Name, is(EventJoin, node.Name))
			if e.Node.Meta != c.metas[j] {
				t.Errorf("n%d: join event for n%d carries %+v, want %+v", i, j, e.Node.Meta, c.metas[j])
			}
		}
	}
}

func TestUpdateMeta(t *testing.T) {
	c := startCluster(t, 3)
	updated := c.metas[1]
	updated.GPUs = 8
	updated.Version = "test-2"
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.members[1].UpdateMeta(ctx, updated); err != nil {
		t.Fatalf("UpdateMeta: %v", err)
	}
	if got := c.members[1].Meta(); got != updated {
		t.Fatalf("Meta() = %+v, want %+v", got, updated)
	}
	for _, i := range []int{0, 2} {
		e := c.rec[i].waitFor(t, "update of n1", func(e Event) bool {
			return e.Type == EventUpdate && e.Node.Name == "n1" && e.Node.Meta == updated
		})
		if e.Node.State != StateAlive {
			t.Errorf("n%d: updated n1 is %s, want alive", i, e.Node.State)
		}
		eventually(t, fmt.Sprintf("n%d's member list to show n1's update", i), func() bool {
			for _, n := range c.members[i].Members() {
				if n.Name == "n1" {
					return n.Meta == updated
				}
			}
			return false
		})
	}

	tooBig := updated
	tooBig.Zone = strings.Repeat("z", MaxMetaSize)
	if err := c.members[1].UpdateMeta(ctx, tooBig); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("UpdateMeta(too big) = %v, want ErrMetaTooLarge", err)
	}
	if got := c.members[1].Meta(); got != updated {
		t.Fatalf("Meta() after a rejected update = %+v, want %+v", got, updated)
	}
}

func TestGracefulLeave(t *testing.T) {
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.members[1].Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if err := c.members[1].Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, i := range []int{0, 2} {
		e := c.rec[i].waitFor(t, "n1 leaving", func(e Event) bool {
			return (e.Type == EventLeave || e.Type == EventFailed) && e.Node.Name == "n1"
		})
		if e.Type != EventLeave || e.Node.State != StateLeft {
			t.Errorf("n%d saw n1 go as %s (%s), want a graceful leave", i, e.Type, e.Node.State)
		}
		eventually(t, fmt.Sprintf("n%d to drop n1", i), func() bool {
			return len(c.members[i].Members()) == 2
		})
	}
	if err := c.members[1].Leave(ctx); !errors.Is(err, ErrShutdown) {
		t.Errorf("Leave after Shutdown = %v, want ErrShutdown", err)
	}
}

func TestFailureDetected(t *testing.T) {
	c := startCluster(t, 3)
	start := time.Now()
	if err := c.members[2].Shutdown(); err != nil { // no Leave: looks like a crash
		t.Fatalf("Shutdown: %v", err)
	}
	for _, i := range []int{0, 1} {
		c.rec[i].waitFor(t, "n2 failing", is(EventFailed, "n2"))
		if c.rec[i].has(is(EventLeave, "n2")) {
			t.Errorf("n%d saw a crashed member leave gracefully", i)
		}
	}
	t.Logf("failure detected by both survivors in %v", time.Since(start))
}

func TestShutdownClosesEvents(t *testing.T) {
	m, err := Start(context.Background(), fastConfig("solo", NodeMeta{Role: RoleWorker, Cores: 1}, testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	// Nobody reads the events; Shutdown must still return and close the
	// channel (the undelivered self-join is logged as discarded).
	if err := m.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := m.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	for range m.Events() {
	}
	if err := m.UpdateMeta(context.Background(), NodeMeta{Role: RoleWorker}); !errors.Is(err, ErrShutdown) {
		t.Fatalf("UpdateMeta after Shutdown = %v, want ErrShutdown", err)
	}
	if err := m.Join(context.Background(), []string{"127.0.0.1:1"}); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Join after Shutdown = %v, want ErrShutdown", err)
	}
}

func TestStartErrors(t *testing.T) {
	// A port nobody listens on: bind one, then close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := l.Addr().String()
	l.Close()

	tests := []struct {
		name    string
		cfg     func(Config) Config
		timeout time.Duration
		wantErr error
	}{
		{"meta too large", func(c Config) Config { c.Meta.Zone = strings.Repeat("z", MaxMetaSize); return c }, time.Second, ErrMetaTooLarge},
		{"invalid meta", func(c Config) Config { c.Meta.Role = ""; return c }, time.Second, ErrInvalidMeta},
		{"no name", func(c Config) Config { c.NodeName = ""; return c }, time.Second, ErrConfig},
		{"probe timeout above interval", func(c Config) Config { c.ProbeTimeout = 2 * c.ProbeInterval; return c }, time.Second, ErrConfig},
		{"join nobody", func(c Config) Config { c.Join = []string{deadAddr}; return c }, 300 * time.Millisecond, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			cfg := tt.cfg(fastConfig("x", NodeMeta{Role: RoleWorker, Cores: 1}, testLogger(t)))
			m, err := Start(ctx, cfg)
			if err == nil {
				_ = m.Shutdown()
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Start = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestEventQueueNeverBlocksOrDrops(t *testing.T) {
	var logs syncBuffer
	q := newEventQueue(slog.New(slog.NewTextHandler(&logs, nil)), 100)
	const n = 1000
	for i := range n { // nobody reads yet: push must not block
		q.push(Event{Type: EventUpdate, Node: Node{Name: fmt.Sprint(i)}})
	}
	if !strings.Contains(logs.String(), "not being consumed") {
		t.Error("no backlog warning logged")
	}
	for i := range n {
		e := <-q.out
		if e.Node.Name != fmt.Sprint(i) {
			t.Fatalf("event %d is %s: out of order", i, e.Node.Name)
		}
	}
	q.push(Event{Type: EventJoin, Node: Node{Name: "last"}})
	q.close()
	var rest []Event
	for e := range q.out {
		rest = append(rest, e)
	}
	if len(rest) > 1 {
		t.Fatalf("got %d events after the last push", len(rest))
	}
	if len(rest) == 0 && !strings.Contains(logs.String(), "undelivered at shutdown") {
		t.Error("an undelivered event was discarded without a log")
	}
	q.push(Event{Type: EventJoin, Node: Node{Name: "late"}})
	if !strings.Contains(logs.String(), "after shutdown discarded") {
		t.Error("event after close discarded without a log")
	}
}
