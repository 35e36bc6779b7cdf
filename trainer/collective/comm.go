package collective

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	DefaultConnectTimeout = 60 * time.Second
	DefaultChunkBytes     = 256 << 10
	DefaultArrivalTimeout = 2 * time.Minute
	maxChunkBytes         = 16 << 20
	// opBarrier marks a barrier's frames, so that a barrier meeting an
	// all-reduce is a mismatch.
	opBarrier Op = 255
)

// Comm is one rank's end of a connected ring. Collectives on it are called
// one at a time, in the same order on every rank. After a failure every
// later call returns that failure.
type Comm struct {
	cfg        Config
	next, prev net.Conn

	mu      sync.Mutex  // one collective at a time
	writeMu sync.Mutex  // one frame at a time on next: data, keepalives, aborts
	inside  atomic.Bool // in a collective (what keepalives tell the next rank)
	started time.Time   // when the current collective began
	quit    chan struct{}
	beating chan struct{} // closed when the heartbeat goroutine ended
	err     error         // the failure that broke the ring
	sendHdr []byte
	recvHdr []byte
	scratch []byte // receive buffer (8-byte aligned)
	tmp     []byte // encoding buffer on big-endian machines

	closeOnce sync.Once
}

// New connects this rank into the ring described by cfg (dialling its
// successor, accepting its predecessor, authenticating both) and waits
// for every rank with a barrier. It fails if that does not finish within
// cfg.ConnectTimeout or ctx ends.
func New(ctx context.Context, cfg Config) (*Comm, error) {
	if err := cfg.check(); err != nil {
		if cfg.Listener != nil {
			cfg.Listener.Close()
		}
		return nil, err
	}
	c := &Comm{
		cfg:     cfg,
		sendHdr: make([]byte, headerLen),
		recvHdr: make([]byte, headerLen),
		scratch: alignedBytes(max(cfg.ChunkBytes, 64)),
	}
	if cfg.Size == 1 {
		if cfg.Listener != nil {
			cfg.Listener.Close()
		}
		return c, nil
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	cfg.Logger.Info("ring: connecting", "rank", cfg.Rank, "ranks", cfg.Size, "next", cfg.Peers[(cfg.Rank+1)%cfg.Size])
	type result struct {
		conn net.Conn
		err  error
	}
	accepted := make(chan result, 1)
	go func() {
		conn, err := acceptPrev(ctx, &c.cfg)
		accepted <- result{conn, err}
	}()
	next, err := dialNext(ctx, &c.cfg)
	if err != nil {
		cancel()
		if a := <-accepted; a.conn != nil {
			a.conn.Close()
		}
		return nil, err
	}
	a := <-accepted
	if a.err != nil {
		next.Close()
		return nil, a.err
	}
	c.next, c.prev = next, a.conn
	cfg.Listener.Close() // the ring is formed: nobody else may connect
	c.quit, c.beating = make(chan struct{}), make(chan struct{})
	go c.heartbeat()
	if err := c.Barrier(ctx, Tag{Step: -1}); err != nil {
		c.Close()
		return nil, err
	}
	cfg.Logger.Info("ring: connected", "rank", cfg.Rank, "ranks", cfg.Size)
	return c, nil
}

// check validates cfg and fills its defaults.
func (cfg *Config) check() error {
	switch {
	case cfg.Size < 1 || cfg.Rank < 0 || cfg.Rank >= cfg.Size:
		return fmt.Errorf("collective: rank %d of %d ranks", cfg.Rank, cfg.Size)
	case len(cfg.Peers) != cfg.Size:
		return fmt.Errorf("collective: %d peer addresses for %d ranks", len(cfg.Peers), cfg.Size)
	case cfg.Size > 1 && cfg.Listener == nil:
		return errors.New("collective: no listener")
	case len(cfg.Secret) < minSecret:
		return fmt.Errorf("collective: a secret of %d bytes; want at least %d", len(cfg.Secret), minSecret)
	case len(cfg.Session) > maxSession:
		return fmt.Errorf("collective: session name of %d bytes; at most %d", len(cfg.Session), maxSession)
	case cfg.ChunkBytes < 0 || cfg.ChunkBytes > maxChunkBytes || cfg.ChunkBytes%8 != 0:
		return fmt.Errorf("collective: chunk of %d bytes; want a multiple of 8 up to %d", cfg.ChunkBytes, maxChunkBytes)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.ArrivalTimeout <= 0 {
		cfg.ArrivalTimeout = DefaultArrivalTimeout
	}
	if cfg.ChunkBytes == 0 {
		cfg.ChunkBytes = DefaultChunkBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Rank is this rank; Size the number of ranks.
func (c *Comm) Rank() int { return c.cfg.Rank }

// Size is the number of ranks.
func (c *Comm) Size() int { return c.cfg.Size }

// Close closes the ring's connections; peers see ErrPeerGone. It is
// idempotent.
func (c *Comm) Close() error {
	c.closeOnce.Do(func() {
		if c.quit != nil {
			close(c.quit)
			<-c.beating
		}
		if c.next != nil {
			c.next.Close()
			c.prev.Close()
		}
	})
	return nil
}

// write sends one frame to the next rank, whole, within the deadline.
// partial reports a frame cut off midway (nothing more may follow it).
func (c *Comm) write(h header, payload []byte, timeout time.Duration) sendResult {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.next.SetWriteDeadline(time.Now().Add(timeout))
	if err := writeFrame(c.next, c.sendHdr, h, payload); err != nil {
		return sendResult{err: err, partial: true}
	}
	return sendResult{}
}

// heartbeat sends a keepalive frame to the next rank every third of the
// deadline for as long as the ring is up, saying whether this rank is
// inside a collective. A live rank busy between collectives (checkpointing,
// evaluating its share) is so told apart from a stopped or dead one, whose
// keepalives stop; and a rank waiting on its own predecessor is not blamed
// for the wait, so only the neighbour of the rank at fault fails first.
func (c *Comm) heartbeat() {
	defer close(c.beating)
	t := time.NewTicker(min(c.cfg.Timeout, c.cfg.ArrivalTimeout) / 3)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
			var inside uint32
			if c.inside.Load() {
				inside = 1
			}
			if s := c.write(header{kind: kindKeepalive, phase: inside}, nil, c.cfg.Timeout); s.err != nil {
				return
			}
		}
	}
}

// begin locks the Comm for one collective and arms ctx's cancellation;
// done undoes both.
func (c *Comm) begin(ctx context.Context) (done func(), err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	if err := ctx.Err(); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() {
		past := time.Unix(1, 0)
		c.next.SetDeadline(past)
		c.prev.SetDeadline(past)
	})
	c.started = time.Now()
	c.inside.Store(true)
	return func() {
		c.inside.Store(false)
		stop()
		c.mu.Unlock()
	}, nil
}

// mod is i modulo the ring size, non-negative.
func (c *Comm) mod(i int) int { return ((i % c.cfg.Size) + c.cfg.Size) % c.cfg.Size }

// prevRank and nextRank are the ring neighbours.
func (c *Comm) prevRank() int { return c.mod(c.cfg.Rank - 1) }
func (c *Comm) nextRank() int { return c.mod(c.cfg.Rank + 1) }

// chunks yields the [lo, hi) bounds of n elements in frames of at most
// step, and one empty frame when n is 0: every rank sends at least one
// frame per step of a collective, so the receiver can check the call.
func chunks(n, step int) iter.Seq2[int, int] {
	return func(yield func(int, int) bool) {
		for lo := 0; lo == 0 || lo < n; lo += step {
			if !yield(lo, min(lo+step, n)) || n == 0 {
				return
			}
		}
	}
}

// chunkElems is how many int64s one frame carries.
func (c *Comm) chunkElems() int { return c.cfg.ChunkBytes / 8 }

// AllReduceInt64 replaces buf, on every rank, with the element-wise
// reduction (op) of every rank's buf. All ranks pass the same tag and
// length. It is a ring reduce-scatter then all-gather over N segments, each
// step sending one segment to the next rank while receiving one from the
// previous, in chunks.
func (c *Comm) AllReduceInt64(ctx context.Context, tag Tag, buf []int64, op Op) error {
	if op != Sum && op != Max {
		return fmt.Errorf("collective: unknown op %d", op)
	}
	return c.allReduce(ctx, "all-reduce", tag, buf, op)
}

// Barrier returns once every rank has called it with tag.
func (c *Comm) Barrier(ctx context.Context, tag Tag) error {
	var one [1]int64
	return c.allReduce(ctx, "barrier", tag, one[:], opBarrier)
}

func (c *Comm) allReduce(ctx context.Context, what string, tag Tag, buf []int64, op Op) error {
	if c.cfg.Size == 1 {
		return nil
	}
	done, err := c.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	n, size, r := len(buf), c.cfg.Size, c.cfg.Rank
	seg := func(i int) []int64 {
		i = c.mod(i)
		return buf[i*n/size : (i+1)*n/size]
	}
	h := header{kind: kindReduce, op: uint8(op), tag: tag, count: uint64(n)}
	for s := 0; s < 2*(size-1); s++ {
		h.phase = uint32(s)
		send, recv, reduce := seg(r-s), seg(r-s-1), true
		if s >= size-1 { // all-gather
			k := s - (size - 1)
			send, recv, reduce = seg(r+1-k), seg(r-k), false
		}
		if err := c.exchange(ctx, what, h, send, recv, reduce); err != nil {
			return err
		}
	}
	return nil
}

// exchange sends send to the next rank while receiving recv from the
// previous one, chunk by chunk, reducing into recv (op of h) or copying.
func (c *Comm) exchange(ctx context.Context, what string, h header, send, recv []int64, reduce bool) error {
	sent := make(chan sendResult, 1)
	go func() { sent <- c.sendInt64s(h, send) }()
	rerr := c.recvInt64s(h, recv, reduce)
	s := <-sent
	switch {
	case rerr != nil:
		return c.fail(ctx, what, h.tag, rerr, s)
	case s.err != nil:
		return c.fail(ctx, what, h.tag, &RankError{Rank: c.nextRank(), Op: what, Tag: h.tag, Err: classify(s.err)}, s)
	}
	return nil
}

// sendResult is how a sending goroutine ended: partial means it was cut
// off inside a frame, so nothing more may be written on the connection.
type sendResult struct {
	err     error
	partial bool
}

// sendInt64s writes xs as frames of at most chunkElems elements.
func (c *Comm) sendInt64s(h header, xs []int64) sendResult {
	step := c.chunkElems()
	for lo, hi := range chunks(len(xs), step) {
		if s := c.write(h, int64Bytes(xs[lo:hi], &c.tmp), c.cfg.Timeout); s.err != nil {
			return s
		}
	}
	return sendResult{}
}

// recvInt64s reads the frames of recv from the previous rank and reduces
// or copies them in; it checks each frame against h.
func (c *Comm) recvInt64s(h header, recv []int64, reduce bool) error {
	step := c.chunkElems()
	for lo, hi := range chunks(len(recv), step) {
		p, err := c.recvFrame(h, (hi-lo)*8)
		if err != nil {
			return err
		}
		apply(recv[lo:hi], p, reduce, Op(h.op))
	}
	return nil
}

// recvFrame reads one frame from the previous rank and checks that it is
// the one expected (want, with plen payload bytes); an abort frame becomes
// the error it names.
func (c *Comm) recvFrame(want header, plen int) ([]byte, error) {
	prev := c.prevRank()
	var (
		got header
		p   []byte
		err error
	)
	for {
		c.prev.SetReadDeadline(time.Now().Add(c.cfg.Timeout))
		if p, err = readFrame(c.prev, c.recvHdr, &got, c.scratch); err != nil {
			return nil, &RankError{Rank: prev, Tag: want.tag, Err: classify(err)}
		}
		if got.kind != kindKeepalive {
			break
		}
		if got.phase == 0 && time.Since(c.started) > c.cfg.ArrivalTimeout {
			return nil, &RankError{Rank: prev, Tag: want.tag, Err: fmt.Errorf("%w: rank %d is alive but did not reach the collective within %v",
				ErrTimeout, prev, c.cfg.ArrivalTimeout)}
		}
	}
	if got.kind == kindAbort {
		culprit := got.tag.Bucket
		if culprit < 0 || culprit >= c.cfg.Size {
			culprit = prev
		}
		return nil, &RankError{Rank: culprit, Tag: want.tag, Err: abortError(p), forwarded: true}
	}
	if got.kind != want.kind || got.op != want.op || got.tag != want.tag || got.count != want.count ||
		got.phase != want.phase || int(got.plen) != plen {
		return nil, &RankError{Rank: prev, Tag: want.tag, Err: fmt.Errorf("%w: rank %d sent %s, this rank expects %s",
			ErrMismatch, prev, describe(got), describe(want))}
	}
	return p, nil
}

// describe names a frame's collective for a mismatch message.
func describe(h header) string {
	kinds := map[uint8]string{kindReduce: "all-reduce", kindBroadcast: "broadcast", kindDigest: "broadcast digest"}
	k := kinds[h.kind]
	if h.kind == kindReduce && Op(h.op) == opBarrier {
		k = "barrier"
	}
	return fmt.Sprintf("%s (op %d) of step %d bucket %d layout %x, %d elements, phase %d",
		k, h.op, h.tag.Step, h.tag.Bucket, h.tag.Layout, h.count, h.phase)
}

// abortError is the cause an abort frame carries.
func abortError(reason []byte) error {
	return errors.New(string(reason))
}

// classify maps a connection error to the package's errors.
func classify(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, ErrCorrupt) || errors.Is(err, ErrMismatch):
		return err
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w: no progress: %v", ErrTimeout, err)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed):
		return fmt.Errorf("%w: connection closed", ErrPeerGone)
	}
	return fmt.Errorf("%w: %v", ErrPeerGone, err)
}

// fail breaks the ring with err: unless ctx ended, it tells the next rank
// who is to blame (an abort frame, when the connection is between frames),
// then shuts its sending side so that it notices at once.
func (c *Comm) fail(ctx context.Context, what string, tag Tag, err error, s sendResult) error {
	if cerr := ctx.Err(); cerr != nil {
		err = fmt.Errorf("collective: %s: %w", what, context.Cause(ctx))
	}
	var re *RankError
	if errors.As(err, &re) {
		re.Op, re.Tag = what, tag
	}
	c.err = err
	if re != nil && !s.partial && ctx.Err() == nil {
		reason := re.Err.Error()
		if !re.forwarded {
			reason = fmt.Sprintf("rank %d (reported by rank %d): %s", re.Rank, c.cfg.Rank, reason)
		}
		if len(reason) > maxAbortReason {
			reason = reason[:maxAbortReason]
		}
		if re.forwarded {
			re.Err = fmt.Errorf("%w: %s", causeOf(re.Err), reason)
		}
		c.write(header{kind: kindAbort, tag: Tag{Bucket: re.Rank}}, []byte(reason), time.Second)
	}
	if cw, ok := c.next.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.cfg.Logger.Warn("ring: collective failed", "rank", c.cfg.Rank, "op", what, "step", tag.Step, "bucket", tag.Bucket, "err", err)
	return err
}

// causeOf recovers, from an abort's reason, which of the package's errors
// it was, so that errors.Is works on every rank.
func causeOf(reason error) error {
	msg := reason.Error()
	for _, e := range []error{ErrTimeout, ErrMismatch, ErrAuth, ErrCorrupt, ErrPeerGone} {
		if strings.Contains(msg, e.Error()) {
			return e
		}
	}
	return ErrPeerGone
}

// Broadcast copies root's buf to every other rank's buf (all pass the same
// length): the chunks travel along the ring from root, each rank keeping
// and forwarding them, then root's SHA-256 of the whole, which every rank
// checks against what it received.
func (c *Comm) Broadcast(ctx context.Context, tag Tag, buf []byte, root int) error {
	if root < 0 || root >= c.cfg.Size {
		return fmt.Errorf("collective: broadcast from rank %d of %d", root, c.cfg.Size)
	}
	if c.cfg.Size == 1 {
		return nil
	}
	done, err := c.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	h := header{kind: kindBroadcast, tag: tag, count: uint64(len(buf)), phase: uint32(root)}
	var s sendResult
	if c.cfg.Rank == root {
		s = c.sendBroadcast(h, buf)
		if s.err != nil {
			return c.fail(ctx, "broadcast", tag, &RankError{Rank: c.nextRank(), Err: classify(s.err)}, s)
		}
		return nil
	}
	if s, err := c.recvBroadcast(h, buf, root); err != nil {
		return c.fail(ctx, "broadcast", tag, err, s)
	}
	return nil
}

// sendBroadcast writes buf in chunks, then its digest.
func (c *Comm) sendBroadcast(h header, buf []byte) sendResult {
	for lo, hi := range chunks(len(buf), c.cfg.ChunkBytes) {
		if s := c.write(h, buf[lo:hi], c.cfg.Timeout); s.err != nil {
			return s
		}
	}
	sum := sha256.Sum256(buf)
	h.kind = kindDigest
	return c.write(h, sum[:], c.cfg.Timeout)
}

// recvBroadcast reads root's chunks into buf, forwarding each to the next
// rank unless that is root, then checks and forwards the digest.
func (c *Comm) recvBroadcast(h header, buf []byte, root int) (sendResult, error) {
	forward := c.nextRank() != root
	send := func(h header, p []byte) sendResult {
		if !forward {
			return sendResult{}
		}
		return c.write(h, p, c.cfg.Timeout)
	}
	for lo, hi := range chunks(len(buf), c.cfg.ChunkBytes) {
		p, err := c.recvFrame(h, hi-lo)
		if err != nil {
			return sendResult{}, err
		}
		copy(buf[lo:hi], p)
		if s := send(h, p); s.err != nil {
			return s, &RankError{Rank: c.nextRank(), Err: classify(s.err)}
		}
	}
	d := h
	d.kind = kindDigest
	p, err := c.recvFrame(d, sha256.Size)
	if err != nil {
		return sendResult{}, err
	}
	if sum := sha256.Sum256(buf); !bytes.Equal(sum[:], p) {
		return sendResult{}, &RankError{Rank: root, Err: fmt.Errorf("%w: the broadcast from rank %d does not match its digest", ErrCorrupt, root)}
	}
	if s := send(d, p); s.err != nil {
		return s, &RankError{Rank: c.nextRank(), Err: classify(s.err)}
	}
	return sendResult{}, nil
}
