package worker

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator"
	"github.com/trainctl/trainctl/membership"
)

// testGossip is a membership configuration on the loopback interface with
// small timings (a failure is declared within about two seconds).
func testGossip() membership.Config {
	c := membership.DefaultConfig()
	c.BindAddr = "127.0.0.1"
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.SuspicionMult = 2
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = time.Second
	c.TCPTimeout = time.Second
	c.JoinRetryInterval = 50 * time.Millisecond
	c.Logger = quietLogger()
	return c
}

// gossipCoordinator starts a coordinator with gossip and the given worker
// lease.
func gossipCoordinator(t *testing.T, lease time.Duration) *coordinator.Server {
	t.Helper()
	srv := startCoordinator(t, func(cfg *coordinator.Config) {
		g := testGossip()
		cfg.Gossip = &g
		cfg.WorkerLease = lease
	})
	if srv.GossipAddr() == "" {
		t.Fatal("the coordinator runs no gossip")
	}
	return srv
}

// observer is a gossip member (a stand-in coordinator role) that records
// the events it sees.
type observer struct {
	m      *membership.Member
	mu     sync.Mutex
	events []membership.Event
}

func startObserver(t *testing.T, join string) *observer {
	t.Helper()
	cfg := testGossip()
	cfg.NodeName = "observer"
	cfg.Meta = membership.NodeMeta{Role: membership.RoleCoordinator}
	cfg.Join = []string{join}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := membership.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	o := &observer{m: m}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range m.Events() {
			o.mu.Lock()
			o.events = append(o.events, e)
			o.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		m.Shutdown()
		<-done
	})
	return o
}

// event returns the first event of type typ about node, when seen.
func (o *observer) event(node string, typ membership.EventType) (membership.Event, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range o.events {
		if e.Node.Name == node && e.Type == typ {
			return e, true
		}
	}
	return membership.Event{}, false
}

// gossipShows checks that the observer sees worker id alive with its
// capacity, at addr.
func (o *observer) gossipShows(id, addr string) func() error {
	return func() error {
		for _, n := range o.m.Members() {
			if n.Name != id {
				continue
			}
			if n.State != membership.StateAlive || n.MetaErr != nil || n.Meta.Role != membership.RoleWorker ||
				n.Meta.Cores != 2 || n.Meta.Version != "test" || n.Addr != addr {
				return fmt.Errorf("gossip shows %+v (want alive worker, 2 cores, version test, at %s)", n, addr)
			}
			return nil
		}
		return fmt.Errorf("%s not in gossip: %+v", id, o.m.Members())
	}
}

// workerIs checks the worker's status in the coordinator's state.
func workerIs(srv *coordinator.Server, id string, want api.WorkerStatus) func() error {
	return func() error {
		w, err := srv.State().Worker(id)
		if err != nil {
			return err
		}
		if string(w.Status) != string(want) {
			return fmt.Errorf("worker %s is %s, want %s", id, w.Status, want)
		}
		return nil
	}
}

// withGossip gives an agent gossip joined to the coordinator.
func withGossip(srv *coordinator.Server) func(*AgentConfig) {
	return func(c *AgentConfig) {
		g := testGossip()
		g.Join = []string{srv.GossipAddr()}
		c.Gossip = &g
		c.Version = "test"
	}
}

// registered waits until the coordinator lists worker id alive, with its
// capacity, at its gossip address, and gossip shows it.
func registered(t *testing.T, srv *coordinator.Server, o *observer, ta *testAgent, id string) {
	t.Helper()
	ac := api.New(srv.HTTPAddr())
	var addr string
	waitUntil(t, 20*time.Second, id+" registered", func() error {
		if addr = ta.agent.GossipAddr(); addr == "" {
			return fmt.Errorf("%s has no gossip address yet", id)
		}
		ws, err := ac.Workers(context.Background())
		if err != nil {
			return err
		}
		for _, w := range ws {
			if w.ID == id {
				if w.Status != api.WorkerAlive || w.Meta.Cores != 2 || w.Meta.Version != "test" || w.Addr != addr {
					return fmt.Errorf("worker %+v (want alive, 2 cores, version test, at %s)", w, addr)
				}
				return nil
			}
		}
		return fmt.Errorf("%s not among %+v", id, ws)
	})
	waitUntil(t, 20*time.Second, "gossip to show "+id, o.gossipShows(id, addr))
}

// TestAgentGossipLeave: an agent with gossip is registered and seen by
// gossip; its stop notice ends in a graceful leave, which the coordinator
// turns into WorkerDown(left) at once, long before the worker's lease (a
// minute) could have run out.
func TestAgentGossipLeave(t *testing.T) {
	const lease = time.Minute
	srv := gossipCoordinator(t, lease)
	o := startObserver(t, srv.GossipAddr())
	ta := startAgentDir(t, "w1", t.TempDir(), srv, nil, nil, withGossip(srv))
	registered(t, srv, o, ta, "w1")

	start := time.Now()
	ta.stop()
	waitUntil(t, 20*time.Second, "w1 left", workerIs(srv, "w1", api.WorkerLeft))
	if took := time.Since(start); took > lease/4 {
		t.Errorf("the leave took %v to show with a %v lease", took, lease)
	}
	t.Logf("stop notice to WorkerDown(left): %v", time.Since(start))
	waitUntil(t, 10*time.Second, "the observer to see w1 leave", func() error {
		if _, ok := o.event("w1", membership.EventLeave); !ok {
			return fmt.Errorf("no leave event for w1")
		}
		return nil
	})
	if _, ok := o.event("w1", membership.EventFailed); ok {
		t.Error("gossip saw w1 fail rather than leave")
	}
	w, err := srv.State().Worker("w1")
	if err != nil || w.Meta.Cores != 0 {
		t.Errorf("w1 after leaving: %+v, %v (want its capacity withdrawn)", w, err)
	}
}

// cuttable is an HTTP proxy to a coordinator that can be cut: then every
// request fails at once, as if the worker's machine were gone.
type cuttable struct {
	cut atomic.Bool
	srv *httptest.Server
}

func newCuttable(t *testing.T, target string) *cuttable {
	t.Helper()
	u, err := url.Parse("http://" + target)
	if err != nil {
		t.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	c := &cuttable{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.cut.Load() {
			http.Error(w, "cut", http.StatusForbidden) // not retried by the client
			return
		}
		p.ServeHTTP(w, r)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// TestAgentGossipDeath: an agent whose gossip stops without a leave and
// whose heartbeats stop (a SIGKILL as the cluster sees it) is seen failing
// by gossip, yet the coordinator marks it dead only when its lease runs
// out.
func TestAgentGossipDeath(t *testing.T) {
	const lease, heartbeat = 3 * time.Second, 200 * time.Millisecond
	srv := gossipCoordinator(t, lease)
	o := startObserver(t, srv.GossipAddr())
	proxy := newCuttable(t, srv.HTTPAddr())
	ta := startAgentDir(t, "w2", t.TempDir(), srv, nil, nil, withGossip(srv), func(c *AgentConfig) {
		c.Coordinators = []string{proxy.srv.Listener.Addr().String()}
		c.HeartbeatInterval = heartbeat
	})
	registered(t, srv, o, ta, "w2")

	killed := time.Now()
	proxy.cut.Store(true)
	if err := ta.agent.member.Load().Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "gossip to see w2 fail", func() error {
		if _, ok := o.event("w2", membership.EventFailed); !ok {
			return fmt.Errorf("no failure event for w2")
		}
		return nil
	})
	failed := time.Since(killed)
	// Gossip declared the failure; the lease, renewed until the
	// coordinator's own gossip declared it, still runs.
	if err := workerIs(srv, "w2", api.WorkerAlive)(); err != nil && failed < lease-heartbeat {
		t.Fatalf("%v after the kill, when gossip saw the failure: %v", failed, err)
	}
	waitUntil(t, 30*time.Second, "w2 dead", workerIs(srv, "w2", api.WorkerDead))
	dead := time.Since(killed)
	if dead < lease-heartbeat {
		t.Errorf("w2 marked dead %v after the kill, before its %v lease could run out", dead, lease)
	}
	if _, ok := o.event("w2", membership.EventLeave); ok {
		t.Error("gossip saw a leave")
	}
	t.Logf("kill to gossip failure: %v; to WorkerDown(dead): %v (lease %v)", failed, dead, lease)
}

// TestAgentGossipRejoin: when every coordinator it knew has gone from
// gossip, the agent joins the configured addresses again, so a
// coordinator restarted there sees it.
func TestAgentGossipRejoin(t *testing.T) {
	srv := startCoordinator(t) // HTTP only; gossip is played by fake coordinators
	start := func(name string, port int) *membership.Member {
		cfg := testGossip()
		cfg.NodeName, cfg.BindPort = name, port
		cfg.Meta = membership.NodeMeta{Role: membership.RoleCoordinator}
		m, err := membership.Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for range m.Events() {
			}
		}()
		t.Cleanup(func() { m.Shutdown() })
		return m
	}
	first := start("fake-c1", 0)
	addr := first.Addr()
	ta := startAgentDir(t, "w3", t.TempDir(), srv, nil, nil, func(c *AgentConfig) {
		g := testGossip()
		g.Join = []string{addr}
		c.Gossip = &g
		c.Version = "test"
	})
	sees := func(m *membership.Member, name string) func() error {
		return func() error {
			for _, n := range m.Members() {
				if n.Name == name {
					return nil
				}
			}
			return fmt.Errorf("%s does not see %s", m.Name(), name)
		}
	}
	waitUntil(t, 20*time.Second, "fake-c1 to see w3", sees(first, "w3"))
	first.Shutdown() // no leave: the coordinator crashed
	agentMember := func() *membership.Member { return ta.agent.member.Load() }
	waitUntil(t, 20*time.Second, "w3 to see fake-c1 fail", func() error {
		if sees(agentMember(), "fake-c1")() == nil {
			return fmt.Errorf("w3 still sees fake-c1")
		}
		return nil
	})
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	second := start("fake-c2", p) // restarted at the same address
	waitUntil(t, 20*time.Second, "the restarted coordinator to see w3", sees(second, "w3"))
	waitUntil(t, 20*time.Second, "w3 to see the restarted coordinator", sees(agentMember(), "fake-c2"))
}
