package collective

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// The handshake of a ring connection, dialer D (rank from) to acceptor A
// (rank to), both knowing the attempt's secret:
//
//	D → A: magic, session, from, to, nonce_D
//	A → D: nonce_A, HMAC(secret, "A" | session | from | to | nonce_D | nonce_A)
//	D → A: HMAC(secret, "D" | session | from | to | nonce_D | nonce_A)
//
// Each side proves the secret over both fresh nonces, so a recorded
// handshake cannot be replayed, and the MACs bind the session and the two
// rank numbers, so a rank of another attempt or position is refused.

const (
	handshakeMagic   = "TCRING01"
	maxSession       = 256
	nonceLen         = 32
	handshakeTimeout = 5 * time.Second
	minSecret        = 16
)

// hello is the dialer's first message.
type hello struct {
	session  string
	from, to uint32
	nonce    [nonceLen]byte
}

func (h *hello) write(w io.Writer) error {
	buf := make([]byte, 0, len(handshakeMagic)+2+len(h.session)+8+nonceLen)
	buf = append(buf, handshakeMagic...)
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(h.session)))
	buf = append(buf, h.session...)
	buf = binary.LittleEndian.AppendUint32(buf, h.from)
	buf = binary.LittleEndian.AppendUint32(buf, h.to)
	buf = append(buf, h.nonce[:]...)
	_, err := w.Write(buf)
	return err
}

func readHello(r io.Reader) (*hello, error) {
	var head [len(handshakeMagic) + 2]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	if string(head[:len(handshakeMagic)]) != handshakeMagic {
		return nil, fmt.Errorf("%w: not a trainctl ring peer", ErrAuth)
	}
	n := binary.LittleEndian.Uint16(head[len(handshakeMagic):])
	if n > maxSession {
		return nil, fmt.Errorf("%w: session name of %d bytes", ErrAuth, n)
	}
	rest := make([]byte, int(n)+8+nonceLen)
	if _, err := io.ReadFull(r, rest); err != nil {
		return nil, err
	}
	h := &hello{session: string(rest[:n])}
	h.from = binary.LittleEndian.Uint32(rest[n:])
	h.to = binary.LittleEndian.Uint32(rest[n+4:])
	copy(h.nonce[:], rest[n+8:])
	return h, nil
}

// mac is the proof of side ("A" or "D") over the hello and the acceptor's
// nonce.
func mac(secret []byte, side string, h *hello, nonceA []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(side))
	var b [2]byte
	binary.LittleEndian.PutUint16(b[:], uint16(len(h.session)))
	m.Write(b[:])
	m.Write([]byte(h.session))
	var r [8]byte
	binary.LittleEndian.PutUint32(r[:], h.from)
	binary.LittleEndian.PutUint32(r[4:], h.to)
	m.Write(r[:])
	m.Write(h.nonce[:])
	m.Write(nonceA)
	return m.Sum(nil)
}

// dialNext connects to the successor, retrying until ctx ends, and
// authenticates both ends.
func dialNext(ctx context.Context, cfg *Config) (net.Conn, error) {
	next := (cfg.Rank + 1) % cfg.Size
	addr := cfg.Peers[next]
	var d net.Dialer
	backoff := 50 * time.Millisecond
	for {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			if conn, err = clientHandshake(conn, cfg, next); err == nil {
				return conn, nil
			}
			if errors.Is(err, ErrAuth) {
				return nil, &RankError{Rank: next, Op: "connect", Err: err}
			}
		}
		cfg.Logger.Debug("ring: dialing the next rank failed; retrying", "rank", next, "addr", addr, "err", err)
		select {
		case <-ctx.Done():
			return nil, &RankError{Rank: next, Op: "connect", Err: fmt.Errorf("%w: could not connect to rank %d at %s: %v", ErrTimeout, next, addr, err)}
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

func clientHandshake(conn net.Conn, cfg *Config, next int) (net.Conn, error) {
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if cfg.TLS != nil {
		tc := cfg.TLS.Clone()
		if tc.ServerName == "" {
			host, _, _ := net.SplitHostPort(cfg.Peers[next])
			tc.ServerName = host
		}
		t := tls.Client(conn, tc)
		if err := t.Handshake(); err != nil {
			conn.Close()
			return nil, err
		}
		conn = t
	}
	h := &hello{session: cfg.Session, from: uint32(cfg.Rank), to: uint32(next)}
	rand.Read(h.nonce[:])
	if err := h.write(conn); err != nil {
		conn.Close()
		return nil, err
	}
	var reply [nonceLen + sha256.Size]byte
	if _, err := io.ReadFull(conn, reply[:]); err != nil {
		conn.Close()
		return nil, err
	}
	nonceA := reply[:nonceLen]
	if !hmac.Equal(reply[nonceLen:], mac(cfg.Secret, "A", h, nonceA)) {
		conn.Close()
		return nil, fmt.Errorf("%w: rank %d at %s did not prove the attempt's secret", ErrAuth, next, cfg.Peers[next])
	}
	if _, err := conn.Write(mac(cfg.Secret, "D", h, nonceA)); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// maxPendingHandshakes bounds the connections being authenticated at
// once; beyond it new ones are refused at once.
const maxPendingHandshakes = 16

// acceptPrev accepts connections until the predecessor authenticates,
// refusing (closing) every other one; handshakes run concurrently, so a
// silent stranger cannot delay the ring. It returns when ctx ends too.
func acceptPrev(ctx context.Context, cfg *Config) (net.Conn, error) {
	prev := (cfg.Rank - 1 + cfg.Size) % cfg.Size
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { cfg.Listener.Close() })
	defer stop()
	won := make(chan net.Conn, 1)
	sem := make(chan struct{}, maxPendingHandshakes)
	go func() {
		for {
			conn, err := cfg.Listener.Accept()
			if err != nil {
				return
			}
			select {
			case sem <- struct{}{}:
			default:
				cfg.Logger.Warn("ring: refused a connection: too many handshakes in progress", "remote", conn.RemoteAddr().String())
				conn.Close()
				continue
			}
			go func() {
				defer func() { <-sem }()
				ok, err := serverHandshake(conn, cfg, prev)
				if err != nil {
					cfg.Logger.Warn("ring: refused a connection", "remote", conn.RemoteAddr().String(), "err", err)
					conn.Close()
					return
				}
				select {
				case won <- ok:
					cancel() // stop accepting
				default:
					ok.Close() // a second valid predecessor: keep the first
				}
			}()
		}
	}()
	select {
	case conn := <-won:
		cfg.Logger.Info("ring: accepted the previous rank", "rank", prev, "remote", conn.RemoteAddr().String())
		return conn, nil
	case <-ctx.Done():
		select {
		case conn := <-won:
			return conn, nil
		default:
		}
		return nil, &RankError{Rank: prev, Op: "connect", Err: fmt.Errorf("%w: rank %d never connected", ErrTimeout, prev)}
	}
}

func serverHandshake(conn net.Conn, cfg *Config, prev int) (net.Conn, error) {
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if cfg.TLS != nil {
		t := tls.Server(conn, cfg.TLS)
		if err := t.Handshake(); err != nil {
			return nil, fmt.Errorf("%w: TLS: %v", ErrAuth, err)
		}
		conn = t
	}
	h, err := readHello(conn)
	if err != nil {
		return nil, err
	}
	var nonceA [nonceLen]byte
	rand.Read(nonceA[:])
	reply := append(nonceA[:], mac(cfg.Secret, "A", h, nonceA[:])...)
	// Answer before judging the claim, so that a stranger learns nothing
	// from timing; the dialer's proof decides.
	if _, err := conn.Write(reply); err != nil {
		return nil, err
	}
	proof := make([]byte, sha256.Size)
	if _, err := io.ReadFull(conn, proof); err != nil {
		return nil, err
	}
	switch {
	case !hmac.Equal(proof, mac(cfg.Secret, "D", h, nonceA[:])):
		return nil, fmt.Errorf("%w: the peer did not prove the attempt's secret", ErrAuth)
	case h.session != cfg.Session:
		return nil, fmt.Errorf("%w: session %q, this ring is %q", ErrAuth, h.session, cfg.Session)
	case int(h.from) != prev || int(h.to) != cfg.Rank:
		return nil, fmt.Errorf("%w: rank %d connecting to rank %d; this is rank %d, expecting rank %d", ErrAuth, h.from, h.to, cfg.Rank, prev)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}
