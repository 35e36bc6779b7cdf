package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/trainctl/trainctl/dataset"
)

// ErrStream is returned (wrapped) when a server's stream does not match its
// ticket: a foreign schema, positions out of sequence, or a stream that ends
// before its epoch does.
var ErrStream = errors.New("inconsistent dataset stream")

// ClientConfig tunes a Client. Zero fields take the defaults.
type ClientConfig struct {
	// MaxMessageBytes is the largest gRPC message accepted: it must hold
	// the largest single row the server sends (DefaultMaxMessageBytes).
	MaxMessageBytes int
	// Logger receives cache events; nil means slog.Default().
	Logger *slog.Logger
}

// Client reads dataset versions from a Server. It is safe for concurrent
// use; each Stream is its own DoGet call.
type Client struct {
	addr string
	conn *grpc.ClientConn
	fc   flight.FlightServiceClient
	log  *slog.Logger
}

// Dial connects to the Flight server at addr (host:port) with the default
// configuration. See DialConfig.
func Dial(ctx context.Context, addr string) (*Client, error) {
	return DialConfig(ctx, addr, ClientConfig{})
}

// DialConfig connects to the Flight server at addr and waits until the
// connection is up, so an unreachable address fails here, with the address
// in the error, rather than on the first call. ctx bounds the wait.
func DialConfig(ctx context.Context, addr string, cfg ClientConfig) (*Client, error) {
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.MaxMessageBytes), grpc.MaxCallSendMsgSize(cfg.MaxMessageBytes)),
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(connWindow),
	)
	if err != nil {
		return nil, fmt.Errorf("dial dataset server %s: %w", addr, err)
	}
	conn.Connect()
	for {
		st := conn.GetState()
		if st == connectivity.Ready {
			break
		}
		if st == connectivity.TransientFailure || st == connectivity.Shutdown {
			conn.Close()
			return nil, fmt.Errorf("dial dataset server %s: cannot connect (is `trainctl dataset serve` listening there?)", addr)
		}
		if !conn.WaitForStateChange(ctx, st) {
			conn.Close()
			return nil, fmt.Errorf("dial dataset server %s: %w", addr, ctx.Err())
		}
	}
	return &Client{addr: addr, conn: conn, fc: flight.NewFlightServiceClient(conn), log: cfg.Logger}, nil
}

// Addr is the server address the client was dialled with.
func (c *Client) Addr() string { return c.addr }

// Close closes the connection; running streams fail.
func (c *Client) Close() error { return c.conn.Close() }

// callError turns a gRPC status into an error that names the call and the
// server and wraps dataset.ErrNotFound or ErrTicket where the code says so,
// so callers can branch with errors.Is; status.Code still sees the code.
func (c *Client) callError(what string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s from %s: %w", what, c.addr, err)
	}
	var sentinel error
	switch st.Code() {
	case codes.NotFound:
		sentinel = dataset.ErrNotFound
	case codes.InvalidArgument:
		sentinel = ErrTicket
	case codes.DataLoss:
		sentinel = dataset.ErrCorrupt
	case codes.Canceled:
		sentinel = context.Canceled
	case codes.DeadlineExceeded:
		sentinel = context.DeadlineExceeded
	}
	return &callError{msg: fmt.Sprintf("%s from %s: %s: %s", what, c.addr, st.Code(), st.Message()), st: st, sentinel: sentinel}
}

// callError is a failed call: its message, its gRPC status (for
// status.FromError and status.Code) and the sentinel its code maps to.
type callError struct {
	msg      string
	st       *status.Status
	sentinel error
}

func (e *callError) Error() string              { return e.msg }
func (e *callError) GRPCStatus() *status.Status { return e.st }
func (e *callError) Unwrap() error              { return e.sentinel }

// descriptor turns a reference NAME or NAME@VERSION into a descriptor path.
func descriptor(ref string) (*flight.FlightDescriptor, error) {
	if _, err := dataset.ParseRef(ref); err != nil {
		return nil, err
	}
	name, ver, ok := strings.Cut(ref, "@")
	path := []string{name}
	if ok {
		path = append(path, ver)
	}
	return &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: path}, nil
}

// manifestOf decodes the manifest a FlightInfo carries as app metadata.
func manifestOf(fi *flight.FlightInfo) (dataset.Manifest, error) {
	var m dataset.Manifest
	if err := json.Unmarshal(fi.GetAppMetadata(), &m); err != nil {
		return m, fmt.Errorf("%w: flight info without a dataset manifest: %v", ErrStream, err)
	}
	if !dataset.ValidID(m.ID) {
		return m, fmt.Errorf("%w: flight info manifest has version id %q", ErrStream, m.ID)
	}
	return m, nil
}

// Info resolves ref (NAME, NAME@latest, NAME@v3 or NAME@<id prefix>) on the
// server and returns that version's manifest.
func (c *Client) Info(ctx context.Context, ref string) (dataset.Manifest, error) {
	d, err := descriptor(ref)
	if err != nil {
		return dataset.Manifest{}, err
	}
	fi, err := c.fc.GetFlightInfo(ctx, d)
	if err != nil {
		return dataset.Manifest{}, c.callError("dataset "+ref, err)
	}
	return manifestOf(fi)
}

// List returns the manifests of every version the server holds, or of the
// versions of name if name is not empty.
func (c *Client) List(ctx context.Context, name string) ([]dataset.Manifest, error) {
	ls, err := c.fc.ListFlights(ctx, &flight.Criteria{Expression: []byte(name)})
	if err != nil {
		return nil, c.callError("list datasets", err)
	}
	var out []dataset.Manifest
	for {
		fi, err := ls.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, c.callError("list datasets", err)
		}
		m, err := manifestOf(fi)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
}

// Item is one streamed example and where it sits.
type Item struct {
	// Example's Image and Mask are views into the received record batch,
	// not copies: they stay valid for as long as the caller keeps them (the
	// memory is garbage collected, never reused) and must not be modified.
	Example dataset.Example
	// Pos is the example's position; for a whole-version stream, Offset is
	// its row in the file and Epoch is zero.
	Pos dataset.Position
	// Next is the position after this example, normalised like
	// Reader.Position ({Epoch+1, 0} after an epoch's last example): what a
	// trainer checkpoints once it has consumed the example.
	Next dataset.Position
	// Meta is the version's geometry.
	Meta dataset.Meta
}

// Stream runs DoGet for t and yields its examples in order. For a shard
// ticket the sequence is exactly what dataset.Reader yields from
// t.Position() to the end of that epoch; the stream is checked for
// completeness, and a stream cut short ends with an error. Stopping the
// loop early cancels the call. A failure is yielded once, as the last pair,
// wrapping dataset.ErrNotFound (unknown version), ErrTicket (bad ticket or
// shard out of range) or ErrStream where that applies.
func (c *Client) Stream(ctx context.Context, t Ticket) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		if err := c.stream(ctx, t, yield); err != nil {
			yield(Item{}, err)
		}
	}
}

func (c *Client) stream(ctx context.Context, t Ticket, yield func(Item, error) bool) error {
	what := fmt.Sprintf("stream %s", dataset.ShortID(t.Version))
	if !t.Whole {
		what = fmt.Sprintf("stream %s %s shard %d/%d epoch %d", dataset.ShortID(t.Version), t.Split, t.Shard, t.NumShards, t.Epoch)
	}
	body, err := t.Encode()
	if err != nil {
		return err
	}
	gs, err := c.fc.DoGet(ctx, &flight.Ticket{Ticket: body})
	if err != nil {
		return c.callError(what, err)
	}
	rdr, err := flight.NewRecordReader(gs, ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return c.callError(what, unwrapFlight(err))
	}
	defer rdr.Release()
	meta, err := dataset.ParseSchema(rdr.Schema())
	if err != nil {
		return fmt.Errorf("%s: %w: %v", what, ErrStream, err)
	}
	pos := dataset.Position{Epoch: t.Epoch, Offset: t.Offset}
	end := -1 // epoch length, from the first batch
	for rdr.Next() {
		rec := rdr.RecordBatch()
		var bm batchMeta
		if err := json.Unmarshal(rdr.LatestAppMetadata(), &bm); err != nil {
			return fmt.Errorf("%s: %w: batch without position metadata: %v", what, ErrStream, err)
		}
		if bm.Epoch != pos.Epoch || bm.Offset != pos.Offset || (end >= 0 && bm.EpochLen != end) {
			return fmt.Errorf("%s: %w: batch starts at %d/%d (of %d), expected %d/%d", what, ErrStream, bm.Epoch, bm.Offset, bm.EpochLen, pos.Epoch, pos.Offset)
		}
		end = bm.EpochLen
		if pos.Offset+int(rec.NumRows()) > end {
			return fmt.Errorf("%s: %w: batch of %d rows at %d runs past the epoch's %d", what, ErrStream, rec.NumRows(), pos.Offset, end)
		}
		cols, err := columnsOf(rec, meta)
		if err != nil {
			return fmt.Errorf("%s: %w: %v", what, ErrStream, err)
		}
		for i := range int(rec.NumRows()) {
			it := Item{Example: cols.example(i), Pos: pos, Meta: meta}
			pos.Offset++
			it.Next = pos
			if pos.Offset == end && !t.Whole {
				it.Next = dataset.Position{Epoch: pos.Epoch + 1}
			}
			if !yield(it, nil) {
				return nil
			}
		}
	}
	if err := rdr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return c.callError(what, unwrapFlight(err))
	}
	if end >= 0 && pos.Offset != end {
		return fmt.Errorf("%s: %w: stream ended at offset %d of %d", what, ErrStream, pos.Offset, end)
	}
	return nil
}

// unwrapFlight finds the gRPC status inside an error the Flight reader
// wrapped with %w, so its code survives.
func unwrapFlight(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if _, ok := e.(interface{ GRPCStatus() *status.Status }); ok {
			return e
		}
	}
	return err
}
