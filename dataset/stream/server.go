package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/trainctl/trainctl/dataset"
)

// Defaults of ServerConfig and ClientConfig.
const (
	// DefaultMaxBatchBytes bounds a DoGet record batch (image and mask data
	// plus ids), well below gRPC's 4 MiB default; a batch always holds at
	// least one row, however large. 512 KiB streamed 1.3 GB/s over loopback
	// against 0.8 GB/s for 2 MiB (BenchmarkFlightStream, BENCHMARKS.md).
	DefaultMaxBatchBytes = 512 << 10
	// DefaultMaxMessageBytes is the gRPC message limit both ends use: room
	// for one row of a 4096×4096 RGB image and its mask.
	DefaultMaxMessageBytes = 256 << 20
	// DefaultMaxOpenVersions is how many opened versions the server keeps
	// in memory for later tickets.
	DefaultMaxOpenVersions = 4
	// DefaultAddr is where `trainctl dataset serve` listens.
	DefaultAddr = "127.0.0.1:8815"
)

// Flow-control windows: much larger than gRPC's 64 KiB start so that a
// multi-MiB batch does not stall on window updates over a fast link.
const (
	streamWindow = 8 << 20
	connWindow   = 32 << 20
)

// ServerConfig tunes a Server. Zero fields take the defaults above.
type ServerConfig struct {
	// MaxBatchBytes bounds the encoded size of a record batch; a single row
	// larger than this is sent alone.
	MaxBatchBytes int
	// MaxMessageBytes is the gRPC send and receive limit. A row larger than
	// this cannot be served; DoGet fails with ResourceExhausted saying so.
	MaxMessageBytes int
	// MaxOpenVersions is how many opened versions are cached between
	// tickets; versions in use by a stream are never closed.
	MaxOpenVersions int
	// Logger receives one line per stream; nil means slog.Default().
	Logger *slog.Logger
}

func (c ServerConfig) withDefaults() ServerConfig {
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxOpenVersions <= 0 {
		c.MaxOpenVersions = DefaultMaxOpenVersions
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Server serves the versions of a dataset.Store over Arrow Flight:
// ListFlights, GetFlightInfo and GetSchema describe versions, DoGet streams
// them (see Ticket). Other Flight methods answer Unimplemented.
type Server struct {
	flight.BaseFlightServer

	store *dataset.Store
	cfg   ServerConfig
	log   *slog.Logger
	grpc  *grpc.Server

	mu    sync.Mutex
	open  map[string]*openVersion // by version id
	clock uint64                  // LRU clock for open
}

// openVersion is a cached opened version. ready is closed once v or err is
// set; refs counts the streams using v.
type openVersion struct {
	ready   chan struct{}
	v       *dataset.Version
	err     error
	refs    int
	used    uint64
	evicted bool
}

// NewServer returns a Server for store. Call Serve to accept connections
// and Close to stop.
func NewServer(store *dataset.Store, cfg ServerConfig) *Server {
	cfg = cfg.withDefaults()
	s := &Server{
		store: store,
		cfg:   cfg,
		log:   cfg.Logger.With("component", "dataset-flight"),
		open:  map[string]*openVersion{},
	}
	s.grpc = grpc.NewServer(
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		grpc.MaxSendMsgSize(cfg.MaxMessageBytes),
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(connWindow),
	)
	flight.RegisterFlightServiceServer(s.grpc, s)
	return s
}

// Serve accepts connections on lis until ctx is done or Close is called.
// When ctx ends it lets running streams finish for a few seconds, then
// stops them. It returns nil after a stop, or the listener's error.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			s.stop(5 * time.Second)
		case <-done:
		}
	}()
	s.log.Info("serving datasets over Arrow Flight", "addr", lis.Addr().String())
	if err := s.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("flight server on %s: %w", lis.Addr(), err)
	}
	s.log.Info("stopped serving datasets", "addr", lis.Addr().String())
	return nil
}

// stop stops gracefully, giving up on running streams after grace.
func (s *Server) stop(grace time.Duration) {
	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-stopped:
	case <-t.C:
		s.grpc.Stop()
		<-stopped
	}
}

// Close stops the server at once, ending running streams, and closes the
// cached versions.
func (s *Server) Close() error {
	s.grpc.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ov := range s.open {
		ov.evicted = true
		s.closeIfIdle(ov)
		delete(s.open, id)
	}
	return nil
}

// acquire returns the opened version id, opening it if needed. The caller
// must call release when its stream is done.
func (s *Server) acquire(id string) (*dataset.Version, func(), error) {
	s.mu.Lock()
	ov, ok := s.open[id]
	if !ok {
		ov = &openVersion{ready: make(chan struct{})}
		s.open[id] = ov
	}
	s.clock++
	ov.used = s.clock
	ov.refs++
	s.mu.Unlock()

	if !ok {
		ov.v, ov.err = s.store.OpenObject(id)
		close(ov.ready)
		s.mu.Lock()
		if ov.err != nil && s.open[id] == ov {
			delete(s.open, id) // let a later ticket try again
		}
		s.evictLocked()
		s.mu.Unlock()
	}
	<-ov.ready
	release := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		ov.refs--
		s.closeIfIdle(ov)
		s.evictLocked() // eviction may have waited for this stream
	}
	if ov.err != nil {
		release()
		return nil, nil, ov.err
	}
	return ov.v, release, nil
}

// evictLocked drops the least recently used idle versions beyond
// MaxOpenVersions.
func (s *Server) evictLocked() {
	for len(s.open) > s.cfg.MaxOpenVersions {
		var oldID string
		var old *openVersion
		for id, ov := range s.open {
			if ov.refs == 0 && (old == nil || ov.used < old.used) {
				oldID, old = id, ov
			}
		}
		if old == nil {
			return // all in use
		}
		delete(s.open, oldID)
		old.evicted = true
		s.closeIfIdle(old)
	}
}

// closeIfIdle closes an evicted version once no stream uses it.
func (s *Server) closeIfIdle(ov *openVersion) {
	if ov.evicted && ov.refs == 0 && ov.v != nil {
		ov.v.Close()
		ov.v = nil
	}
}

// grpcError maps store and dataset errors to gRPC status codes.
func grpcError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, dataset.ErrNotFound), errors.Is(err, os.ErrNotExist):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, dataset.ErrBadRef), errors.Is(err, dataset.ErrAmbiguous),
		errors.Is(err, ErrTicket), errors.Is(err, dataset.ErrShard):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, dataset.ErrCorrupt), errors.Is(err, dataset.ErrSchema):
		return status.Error(codes.DataLoss, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// refFromPath turns a descriptor path [name] or [name, version] into a
// dataset reference.
func refFromPath(d *flight.FlightDescriptor) (string, error) {
	if d == nil || d.Type != flight.DescriptorPATH {
		return "", status.Error(codes.InvalidArgument, "flight descriptor must be a PATH of [name] or [name, version]")
	}
	switch len(d.Path) {
	case 1:
		return d.Path[0], nil
	case 2:
		return d.Path[0] + "@" + d.Path[1], nil
	}
	return "", status.Errorf(codes.InvalidArgument, "flight descriptor path %q: want [name] or [name, version]", d.Path)
}

// flightInfo describes the version of manifest m: its schema, counts, one
// endpoint with the whole-version ticket, and the manifest as app metadata.
func (s *Server) flightInfo(m dataset.Manifest) (*flight.FlightInfo, error) {
	tk, err := WholeTicket(m.ID).Encode()
	if err != nil {
		return nil, grpcError(err)
	}
	md, err := json.Marshal(m)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encode manifest of %s: %v", m.Ref(), err)
	}
	return &flight.FlightInfo{
		Schema:           flight.SerializeSchema(dataset.NewSchema(m.Meta), memory.DefaultAllocator),
		FlightDescriptor: &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{m.Name, m.Version()}},
		Endpoint:         []*flight.FlightEndpoint{{Ticket: &flight.Ticket{Ticket: tk}}},
		TotalRecords:     int64(m.Examples),
		TotalBytes:       m.Bytes,
		Ordered:          true,
		AppMetadata:      md,
	}, nil
}

// ListFlights sends one FlightInfo per version in the store. The criteria
// expression, if any, is a dataset name to restrict the list to.
func (s *Server) ListFlights(c *flight.Criteria, fs flight.FlightService_ListFlightsServer) error {
	ms, err := s.store.List()
	if err != nil {
		return grpcError(fmt.Errorf("list versions: %w", err))
	}
	name := strings.TrimSpace(string(c.GetExpression()))
	for _, m := range ms {
		if name != "" && m.Name != name {
			continue
		}
		fi, err := s.flightInfo(m)
		if err != nil {
			return err
		}
		if err := fs.Send(fi); err != nil {
			return err
		}
	}
	return nil
}

// resolve maps a descriptor to a manifest.
func (s *Server) resolve(d *flight.FlightDescriptor) (dataset.Manifest, error) {
	ref, err := refFromPath(d)
	if err != nil {
		return dataset.Manifest{}, err
	}
	m, err := s.store.Resolve(ref)
	if err != nil {
		return dataset.Manifest{}, grpcError(fmt.Errorf("resolve %s: %w", ref, err))
	}
	return m, nil
}

// GetFlightInfo resolves the descriptor path [name] or [name, version] (v3,
// latest or an id prefix) and describes that version.
func (s *Server) GetFlightInfo(_ context.Context, d *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	m, err := s.resolve(d)
	if err != nil {
		return nil, err
	}
	return s.flightInfo(m)
}

// GetSchema returns the Arrow schema of the version the descriptor names.
func (s *Server) GetSchema(_ context.Context, d *flight.FlightDescriptor) (*flight.SchemaResult, error) {
	m, err := s.resolve(d)
	if err != nil {
		return nil, err
	}
	return &flight.SchemaResult{Schema: flight.SerializeSchema(dataset.NewSchema(m.Meta), memory.DefaultAllocator)}, nil
}

// DoGet streams what the JSON ticket names (see Ticket): bad tickets and
// out-of-range shards are InvalidArgument, unknown versions NotFound.
func (s *Server) DoGet(tk *flight.Ticket, fs flight.FlightService_DoGetServer) error {
	t, err := DecodeTicket(tk.GetTicket())
	if err != nil {
		return grpcError(err)
	}
	if !dataset.ValidID(t.Version) {
		return status.Errorf(codes.InvalidArgument, "ticket version %q is not a version id (64 lowercase hex digits)", t.Version)
	}
	v, release, err := s.acquire(t.Version)
	if err != nil {
		return grpcError(err) // names the version already
	}
	defer release()

	start := time.Now()
	var rows, bytes int
	if t.Whole {
		rows, bytes, err = s.sendWhole(fs, v)
	} else {
		rows, bytes, err = s.sendShard(fs, v, t)
	}
	if err != nil {
		if _, ok := status.FromError(err); !ok {
			err = grpcError(err)
		}
		level := slog.LevelWarn
		switch status.Code(err) {
		case codes.InvalidArgument, codes.NotFound, codes.ResourceExhausted:
			level = slog.LevelInfo // the request's fault, not the server's
		case codes.Canceled, codes.DeadlineExceeded:
			level = slog.LevelDebug // the client stopped reading
		}
		if fs.Context().Err() != nil {
			level = slog.LevelDebug
		}
		s.log.Log(fs.Context(), level, "stream ended with an error", "version", dataset.ShortID(t.Version),
			"ticket", string(tk.GetTicket()), "rows", rows, "err", err)
		return err
	}
	s.log.Debug("stream done", "version", dataset.ShortID(t.Version), "whole", t.Whole, "split", t.Split,
		"shard", t.Shard, "num_shards", t.NumShards, "epoch", t.Epoch, "offset", t.Offset,
		"rows", rows, "bytes", bytes, "elapsed", time.Since(start))
	return nil
}

// batchSender writes examples as bounded record batches to a DoGet stream.
type batchSender struct {
	ctx   context.Context
	w     *flight.Writer
	b     *batchBuilder
	max   int
	meta  batchMeta // position of the batch being built
	next  batchMeta // position of the next example appended
	rows  int
	bytes int
}

func (s *Server) newSender(fs flight.FlightService_DoGetServer, v *dataset.Version, first batchMeta) (*batchSender, error) {
	m := v.Meta()
	if row := m.ImageBytes() + m.MaskBytes() + 1024; row > s.cfg.MaxMessageBytes {
		return nil, status.Errorf(codes.ResourceExhausted,
			"a row of %dx%dx%d is %d bytes, above the server's %d byte message limit", m.Height, m.Width, m.Channels, row, s.cfg.MaxMessageBytes)
	}
	schema := dataset.NewSchema(m)
	return &batchSender{
		ctx:  fs.Context(),
		w:    flight.NewRecordWriter(fs, ipc.WithSchema(schema), ipc.WithAllocator(memory.DefaultAllocator)),
		b:    newBatchBuilder(schema, m),
		max:  s.cfg.MaxBatchBytes,
		meta: first,
		next: first,
	}, nil
}

// add appends e, sending the batch first if e would push it over the bound.
func (bs *batchSender) add(e dataset.Example) error {
	if bs.b.Rows() > 0 && bs.b.Bytes()+rowBytes(bs.b.meta, e) > bs.max {
		if err := bs.flush(); err != nil {
			return err
		}
	}
	if err := bs.b.Append(e); err != nil {
		return err
	}
	bs.next.Offset++
	return nil
}

// flush sends the pending batch, if any.
func (bs *batchSender) flush() error {
	if bs.b.Rows() == 0 {
		return nil
	}
	if err := bs.ctx.Err(); err != nil {
		return err
	}
	md, err := json.Marshal(bs.meta)
	if err != nil {
		return err
	}
	rows, bytes := bs.b.Rows(), bs.b.Bytes()
	rec := bs.b.Record()
	defer rec.Release()
	if err := bs.w.WriteWithAppMetadata(rec, md); err != nil {
		return fmt.Errorf("send record batch at %d/%d: %w", bs.meta.Epoch, bs.meta.Offset, err)
	}
	bs.rows += rows
	bs.bytes += bytes
	bs.meta = bs.next
	return nil
}

// close sends the last batch and ends the IPC stream (the schema alone if
// no rows were sent).
func (bs *batchSender) close() error {
	defer bs.b.Release()
	err := bs.flush()
	if cerr := bs.w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("end stream: %w", cerr)
	}
	return err
}

// sendShard streams the rows of ticket t's shard and epoch from t.Offset.
func (s *Server) sendShard(fs flight.FlightService_DoGetServer, v *dataset.Version, t Ticket) (int, int, error) {
	r, err := dataset.NewReader(v, dataset.ReaderConfig{
		Split: t.Split, Shard: t.Shard, NumShards: t.NumShards, Seed: t.Seed,
		Start: dataset.Position{Epoch: t.Epoch},
	})
	if err != nil {
		return 0, 0, status.Errorf(codes.InvalidArgument, "version %s: %v", dataset.ShortID(t.Version), err)
	}
	n := r.EpochLen()
	if t.Offset > n {
		return 0, 0, status.Errorf(codes.InvalidArgument,
			"version %s: offset %d out of range: shard %d of %d of split %s has %d examples per epoch",
			dataset.ShortID(t.Version), t.Offset, t.Shard, t.NumShards, t.Split, n)
	}
	rows := r.EpochRows(t.Epoch)[t.Offset:]
	bs, err := s.newSender(fs, v, batchMeta{Epoch: t.Epoch, Offset: t.Offset, EpochLen: n})
	if err != nil {
		return 0, 0, err
	}
	for _, row := range rows {
		if err := bs.add(v.Example(row)); err != nil {
			bs.b.Release()
			return bs.rows, bs.bytes, err
		}
	}
	err = bs.close()
	return bs.rows, bs.bytes, err
}

// sendWhole streams every row of v in file order.
func (s *Server) sendWhole(fs flight.FlightService_DoGetServer, v *dataset.Version) (int, int, error) {
	bs, err := s.newSender(fs, v, batchMeta{EpochLen: v.Len()})
	if err != nil {
		return 0, 0, err
	}
	for i := range v.Len() {
		if err := bs.add(v.Example(i)); err != nil {
			bs.b.Release()
			return bs.rows, bs.bytes, err
		}
	}
	err = bs.close()
	return bs.rows, bs.bytes, err
}
