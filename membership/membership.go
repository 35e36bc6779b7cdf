package membership

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrShutdown is returned by operations on a [Member] after [Member.Shutdown].
var ErrShutdown = errors.New("membership: member is shut down")

// ErrConfig is wrapped by [Start] for an invalid [Config].
var ErrConfig = errors.New("membership: invalid config")

// Config configures a [Member]. Start from [DefaultConfig].
type Config struct {
	// NodeName is the member's name, unique in the cluster (the worker or
	// coordinator ID).
	NodeName string
	// BindAddr and BindPort are where gossip listens (UDP and TCP on the
	// same port). BindPort 0 picks a free port; see [Member.Addr].
	BindAddr string
	BindPort int
	// AdvertiseAddr and AdvertisePort are what others dial, when they differ
	// from the bind address (NAT, containers). Empty and 0 mean derive them.
	AdvertiseAddr string
	AdvertisePort int
	// Meta is the member's initial metadata.
	Meta NodeMeta
	// Join lists host:port gossip addresses of existing members. Empty
	// starts a new cluster.
	Join []string
	// Logger receives the member's logs and memberlist's own, at their
	// levels. Nil discards them.
	Logger *slog.Logger
	// SecretKey, when set (16, 24 or 32 bytes), encrypts and authenticates
	// gossip with AES-GCM; every member needs the same key.
	SecretKey []byte

	// ProbeInterval is how often a random member is probed; ProbeTimeout
	// how long to wait for its ack. Failure detection takes a few probe
	// intervals plus the suspicion time.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	// SuspicionMult scales how long a suspect member has to refute before
	// it is declared failed: SuspicionMult × max(1, log10(N)) × ProbeInterval.
	SuspicionMult int
	// GossipInterval is how often queued broadcasts are gossiped.
	GossipInterval time.Duration
	// PushPullInterval is how often full state is exchanged with a random
	// member over TCP; 0 disables it.
	PushPullInterval time.Duration
	// TCPTimeout bounds stream connections (join, push/pull, TCP probes).
	TCPTimeout time.Duration
	// DeadNodeReclaimTime lets a failed member's name be reused from
	// another address after this long (a worker restarted with a new IP).
	DeadNodeReclaimTime time.Duration
	// JoinRetryInterval is the pause between join attempts in [Start].
	JoinRetryInterval time.Duration
	// BroadcastTimeout bounds [Member.UpdateMeta] and [Member.Leave] when
	// their context has no earlier deadline.
	BroadcastTimeout time.Duration
	// EventBacklogWarn is the backlog of undelivered events at which a
	// warning is logged (then again at each doubling).
	EventBacklogWarn int
}

// DefaultConfig returns a configuration tuned for a data-centre LAN:
// failures are detected in about two seconds.
func DefaultConfig() Config {
	return Config{
		BindAddr:            "0.0.0.0",
		ProbeInterval:       500 * time.Millisecond,
		ProbeTimeout:        250 * time.Millisecond,
		SuspicionMult:       3,
		GossipInterval:      100 * time.Millisecond,
		PushPullInterval:    15 * time.Second,
		TCPTimeout:          2 * time.Second,
		DeadNodeReclaimTime: 30 * time.Second,
		JoinRetryInterval:   500 * time.Millisecond,
		BroadcastTimeout:    5 * time.Second,
		EventBacklogWarn:    1024,
	}
}

func (c Config) validate() error {
	switch {
	case c.NodeName == "":
		return fmt.Errorf("%w: empty node name", ErrConfig)
	case c.BindPort < 0 || c.BindPort > 65535:
		return fmt.Errorf("%w: bind port %d", ErrConfig, c.BindPort)
	case c.ProbeInterval <= 0 || c.ProbeTimeout <= 0 || c.GossipInterval <= 0 || c.TCPTimeout <= 0:
		return fmt.Errorf("%w: probe interval, probe timeout, gossip interval and TCP timeout must be positive", ErrConfig)
	case c.ProbeTimeout >= c.ProbeInterval:
		return fmt.Errorf("%w: probe timeout %v must be shorter than the probe interval %v", ErrConfig, c.ProbeTimeout, c.ProbeInterval)
	case c.SuspicionMult < 1:
		return fmt.Errorf("%w: suspicion multiplier %d", ErrConfig, c.SuspicionMult)
	case c.JoinRetryInterval <= 0 || c.BroadcastTimeout <= 0:
		return fmt.Errorf("%w: join retry interval and broadcast timeout must be positive", ErrConfig)
	}
	return nil
}

// State is a member's liveness as this member sees it.
type State string

// Member states.
const (
	// StateAlive: a member, answering probes or suspected but not yet
	// declared dead.
	StateAlive State = "alive"
	// StateLeft: left gracefully ([Member.Leave]).
	StateLeft State = "left"
	// StateFailed: stopped answering and was declared dead.
	StateFailed State = "failed"
)

// Node is one member of the cluster.
type Node struct {
	// Name is the member's unique name.
	Name string
	// Addr is its gossip address, host:port.
	Addr string
	// Meta is its metadata; zero when MetaErr is set.
	Meta NodeMeta
	// MetaErr is set when its metadata could not be decoded (a foreign or
	// incompatible member); such nodes should not be given work.
	MetaErr error
	// State is its liveness.
	State State
}

// EventType is the kind of a membership change.
type EventType uint8

// Membership changes.
const (
	// EventJoin: a member appeared, or came back after leaving or failing.
	EventJoin EventType = iota + 1
	// EventUpdate: a member's metadata changed.
	EventUpdate
	// EventLeave: a member left gracefully.
	EventLeave
	// EventFailed: a member stopped answering and was declared dead.
	EventFailed
)

// String returns the event type's name.
func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventLeave:
		return "leave"
	case EventFailed:
		return "failed"
	}
	return fmt.Sprintf("event(%d)", uint8(t))
}

// Event is a membership change as this member learned it.
type Event struct {
	// Type is what happened.
	Type EventType
	// Node is the member it happened to, as of the event.
	Node Node
}

// Member is this process's membership in the gossip cluster. Its methods
// are safe for concurrent use.
type Member struct {
	ml     *memberlist.Memberlist
	cfg    Config
	log    *slog.Logger
	events *eventQueue

	metaMu sync.Mutex
	meta   []byte // encoded, always within MaxMetaSize

	// view is the live members as the event callbacks report them.
	// memberlist's own Members returns pointers into state it keeps
	// mutating, so reading them would race; the callbacks run under its
	// lock and see consistent copies.
	viewMu sync.Mutex
	view   map[string]Node
	addr   string

	// life guards against memberlist calls after Shutdown, which panic:
	// Leave and UpdateMeta hold it shared, Shutdown exclusively.
	life sync.RWMutex
	down bool
}

// Start creates the member, starts gossip and, when cfg.Join is set, joins
// the cluster, retrying every cfg.JoinRetryInterval until one address
// answers or ctx ends. ctx bounds only the start: the member then runs
// until [Member.Shutdown]. Events begin with this member's own join.
func Start(ctx context.Context, cfg Config) (*Member, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	meta, err := cfg.Meta.Encode()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", cfg.NodeName, err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "membership", "node", cfg.NodeName)
	m := &Member{cfg: cfg, log: logger, meta: meta, view: make(map[string]Node)}
	m.events = newEventQueue(logger, cfg.EventBacklogWarn)

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeName
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = cfg.BindPort
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = cfg.BindPort
	}
	mc.ProbeInterval = cfg.ProbeInterval
	mc.ProbeTimeout = cfg.ProbeTimeout
	mc.SuspicionMult = cfg.SuspicionMult
	mc.GossipInterval = cfg.GossipInterval
	mc.PushPullInterval = cfg.PushPullInterval
	mc.TCPTimeout = cfg.TCPTimeout
	mc.DeadNodeReclaimTime = cfg.DeadNodeReclaimTime
	mc.SecretKey = cfg.SecretKey
	mc.Delegate = (*delegate)(m)
	mc.Events = (*eventDelegate)(m)
	mc.Logger = log.New(logWriter{logger}, "", 0)

	ml, err := memberlist.Create(mc)
	if err != nil {
		m.events.close()
		return nil, fmt.Errorf("start %s: %w", cfg.NodeName, err)
	}
	m.ml = ml
	m.viewMu.Lock()
	m.addr = m.view[cfg.NodeName].Addr // the self-join ran inside Create
	m.viewMu.Unlock()
	logger.Info("gossip started", "addr", m.Addr())
	if len(cfg.Join) > 0 {
		if err := m.Join(ctx, cfg.Join); err != nil {
			_ = m.Shutdown()
			return nil, fmt.Errorf("start %s: %w", cfg.NodeName, err)
		}
	}
	return m, nil
}

// Join contacts the given members (host:port) and merges their view of
// the cluster, retrying every Config.JoinRetryInterval until at least one
// answers or ctx ends.
func (m *Member) Join(ctx context.Context, addrs []string) error {
	for {
		m.life.RLock()
		if m.down {
			m.life.RUnlock()
			return fmt.Errorf("join: %w", ErrShutdown)
		}
		n, err := m.ml.Join(addrs)
		m.life.RUnlock()
		if n > 0 {
			m.log.Info("joined cluster", "contacted", n)
			return nil
		}
		if err == nil {
			err = errors.New("no member answered")
		}
		m.log.Warn("join failed; retrying", "addrs", addrs, "err", err)
		t := time.NewTimer(m.cfg.JoinRetryInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("join %s: %w (last error: %w)", strings.Join(addrs, ","), ctx.Err(), err)
		case <-t.C:
		}
	}
}

// Name returns this member's name.
func (m *Member) Name() string { return m.cfg.NodeName }

// Addr returns this member's advertised gossip address, host:port, for
// others to join.
func (m *Member) Addr() string { return m.addr }

// Meta returns this member's current metadata.
func (m *Member) Meta() NodeMeta {
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	meta, _ := DecodeMeta(m.meta) // encoded by us: always valid
	return meta
}

// Members returns the members this one believes alive, itself included,
// sorted by name. A member that missed probes (suspect) stays listed until
// it is declared failed.
func (m *Member) Members() []Node {
	m.viewMu.Lock()
	out := make([]Node, 0, len(m.view))
	for _, n := range m.view {
		out = append(out, n)
	}
	m.viewMu.Unlock()
	slices.SortFunc(out, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Events returns the channel of membership changes, in the order this
// member learned them. Delivery never blocks gossip and never drops an
// event: changes wait in an unbounded queue until read (a warning is
// logged when the backlog reaches Config.EventBacklogWarn and at each
// doubling), so the channel must be drained for as long as the member
// runs. [Member.Shutdown] closes the channel; events still undelivered
// then are discarded and their number logged.
func (m *Member) Events() <-chan Event { return m.events.out }

// UpdateMeta replaces this member's metadata and gossips it, waiting until
// the update has been sent to at least one other member (if any), until
// ctx ends or until Config.BroadcastTimeout. Metadata over [MaxMetaSize]
// fails with [ErrMetaTooLarge] and changes nothing. When the wait fails the
// new metadata is still in effect and spreads with later gossip.
func (m *Member) UpdateMeta(ctx context.Context, meta NodeMeta) error {
	b, err := meta.Encode()
	if err != nil {
		return fmt.Errorf("update metadata: %w", err)
	}
	return m.broadcast(ctx, "update metadata", func(timeout time.Duration) error {
		m.metaMu.Lock()
		m.meta = b
		m.metaMu.Unlock()
		return m.ml.UpdateNode(timeout)
	})
}

// Leave announces that this member is leaving, so the others see
// [EventLeave] rather than [EventFailed], and waits until the announcement
// has been gossiped, until ctx ends or until Config.BroadcastTimeout (for
// each of its two steps). It first gossips its metadata with
// [NodeMeta.Leaving] set, then memberlist's leave message; a member that
// got the second marks the departure as a leave. One that missed both
// detects the departure as a failure. The member keeps answering gossip
// until [Member.Shutdown], which should follow.
func (m *Member) Leave(ctx context.Context) error {
	meta := m.Meta()
	meta.Leaving = true
	if err := m.UpdateMeta(ctx, meta); err != nil {
		if errors.Is(err, ErrShutdown) || ctx.Err() != nil {
			return fmt.Errorf("leave: %w", err)
		}
		m.log.Warn("leave: announcing in metadata failed; leaving anyway", "err", err)
	}
	return m.broadcast(ctx, "leave", m.ml.Leave)
}

// broadcast runs a memberlist call that waits for a broadcast, bounded by
// ctx and the broadcast timeout.
func (m *Member) broadcast(ctx context.Context, what string, call func(time.Duration) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	timeout := m.cfg.BroadcastTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return fmt.Errorf("%s: %w", what, context.DeadlineExceeded)
	}
	m.life.RLock()
	if m.down {
		m.life.RUnlock()
		return fmt.Errorf("%s: %w", what, ErrShutdown)
	}
	done := make(chan error, 1)
	go func() {
		defer m.life.RUnlock()
		done <- call(timeout)
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
}

// Shutdown stops gossip without announcing a leave (others will see this
// member fail unless [Member.Leave] came first), and closes the events
// channel. It waits for a [Member.Leave] or [Member.UpdateMeta] in
// progress. Safe to call more than once.
func (m *Member) Shutdown() error {
	m.life.Lock()
	if m.down {
		m.life.Unlock()
		return nil
	}
	m.down = true
	err := m.ml.Shutdown()
	m.life.Unlock()
	m.events.close()
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	m.log.Info("gossip stopped")
	return nil
}

// toNode copies memberlist's view of a member as alive; it must be called
// from an event callback, while memberlist holds its lock.
func toNode(n *memberlist.Node) Node {
	out := Node{
		State: StateAlive,
		Name:  n.Name,
		Addr:  net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))),
	}
	out.Meta, out.MetaErr = DecodeMeta(n.Meta)
	return out
}

// delegate supplies this member's metadata to memberlist.
type delegate Member

// NodeMeta implements memberlist.Delegate.
func (d *delegate) NodeMeta(limit int) []byte {
	d.metaMu.Lock()
	defer d.metaMu.Unlock()
	if len(d.meta) > limit { // unreachable: Encode enforces MaxMetaSize
		d.log.Error("node metadata over the gossip limit; sending none", "bytes", len(d.meta), "limit", limit)
		return nil
	}
	return slices.Clone(d.meta)
}

// NotifyMsg implements memberlist.Delegate; user messages are unused.
func (d *delegate) NotifyMsg([]byte) {}

// GetBroadcasts implements memberlist.Delegate; user broadcasts are unused.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState implements memberlist.Delegate; no extra state is exchanged.
func (d *delegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate; no extra state is exchanged.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {}

// eventDelegate turns memberlist's callbacks, made while memberlist holds
// its node lock, into queued events without blocking.
type eventDelegate Member

// NotifyJoin implements memberlist.EventDelegate.
func (e *eventDelegate) NotifyJoin(n *memberlist.Node) { e.alive(EventJoin, n) }

// NotifyUpdate implements memberlist.EventDelegate.
func (e *eventDelegate) NotifyUpdate(n *memberlist.Node) { e.alive(EventUpdate, n) }

func (e *eventDelegate) alive(t EventType, n *memberlist.Node) {
	node := toNode(n)
	e.viewMu.Lock()
	e.view[node.Name] = node
	e.viewMu.Unlock()
	e.events.push(Event{Type: t, Node: node})
}

// NotifyLeave implements memberlist.EventDelegate. memberlist reports both
// a graceful leave and a death here, and the state in the node it passes
// is never updated (memberlist keeps the real one in a shadowing field),
// so the Leaving flag the member gossiped before leaving tells them apart.
func (e *eventDelegate) NotifyLeave(n *memberlist.Node) {
	node := toNode(n)
	t := EventFailed
	node.State = StateFailed
	if node.MetaErr == nil && node.Meta.Leaving {
		t, node.State = EventLeave, StateLeft
	}
	e.viewMu.Lock()
	delete(e.view, node.Name)
	e.viewMu.Unlock()
	e.events.push(Event{Type: t, Node: node})
}

// logWriter routes memberlist's "[LEVEL] memberlist: message" lines into
// slog at the matching level.
type logWriter struct{ l *slog.Logger }

// Write implements io.Writer for one log line.
func (w logWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	if rest, ok := strings.CutPrefix(msg, "["); ok {
		if tag, text, ok := strings.Cut(rest, "]"); ok {
			switch tag {
			case "DEBUG", "TRACE":
				level = slog.LevelDebug
			case "WARN":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			msg = strings.TrimSpace(text)
		}
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	w.l.Log(context.Background(), level, msg, "source", "memberlist")
	return len(p), nil
}
