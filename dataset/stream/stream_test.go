package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/trainctl/trainctl/dataset"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// patternExamples returns n examples of geometry m whose bytes depend on
// the row, every third one in the val split.
func patternExamples(m dataset.Meta, n int) []dataset.Example {
	exs := make([]dataset.Example, n)
	for i := range exs {
		img := make([]byte, m.ImageBytes())
		for j := range img {
			img[j] = byte(i*7 + j)
		}
		mask := make([]byte, m.MaskBytes())
		for j := range mask {
			mask[j] = byte((i + j) % len(m.Classes))
		}
		split := dataset.SplitTrain
		if i%3 == 2 {
			split = dataset.SplitVal
		}
		exs[i] = dataset.Example{ID: fmt.Sprintf("ex-%05d", i), Split: split, Image: img, Mask: mask}
	}
	return exs
}

// registerExamples registers exs as a version of name in st.
func registerExamples(t testing.TB, st *dataset.Store, name string, m dataset.Meta, exs []dataset.Example) dataset.Manifest {
	t.Helper()
	man, _, err := st.Register(context.Background(), name, m, func(yield func(dataset.Example) error) (dataset.Provenance, error) {
		for _, e := range exs {
			if err := yield(e); err != nil {
				return dataset.Provenance{}, err
			}
		}
		return dataset.Provenance{Source: dataset.Source{Kind: dataset.SourceImport, Path: "test"}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return man
}

// shapesStore is a store holding "shapes": 40 generated 32×32 examples.
func shapesStore(t testing.TB) (*dataset.Store, dataset.Manifest) {
	t.Helper()
	st, err := dataset.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := dataset.ShapesConfig{N: 40, Size: 32, Seed: 3, ValFraction: 0.25}
	m, _, err := st.Register(context.Background(), "shapes", cfg.Meta(), func(yield func(dataset.Example) error) (dataset.Provenance, error) {
		return dataset.Provenance{Source: cfg.Source()}, dataset.GenerateShapes(context.Background(), cfg, yield)
	})
	if err != nil {
		t.Fatal(err)
	}
	return st, m
}

// startServer serves st on a random loopback port until the test ends.
func startServer(t testing.TB, st *dataset.Store, cfg ServerConfig) (*Server, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	srv := NewServer(st, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, lis.Addr().String()
}

func dialTest(t testing.TB, addr string, cfg ClientConfig) *Client {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	c, err := DialConfig(context.Background(), addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// collect drains a stream, copying nothing: views stay valid.
func collect(t testing.TB, c *Client, tk Ticket) ([]Item, error) {
	t.Helper()
	var items []Item
	for it, err := range c.Stream(context.Background(), tk) {
		if err != nil {
			return items, err
		}
		items = append(items, it)
	}
	return items, nil
}

func openLocal(t testing.TB, st *dataset.Store, id string) *dataset.Version {
	t.Helper()
	v, err := st.OpenObject(id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func sameExample(a, b dataset.Example) bool {
	return a.ID == b.ID && a.Split == b.Split && bytes.Equal(a.Image, b.Image) && bytes.Equal(a.Mask, b.Mask)
}

// TestStreamMatchesReader checks that every shard's stream is, example for
// example and byte for byte, what a local Reader yields, with the same
// positions, over several epochs, shard counts and batch sizes.
func TestStreamMatchesReader(t *testing.T) {
	st, m := shapesStore(t)
	v := openLocal(t, st, m.ID)
	for _, batch := range []int{0, 9000} { // default, and about two rows per batch
		_, addr := startServer(t, st, ServerConfig{MaxBatchBytes: batch})
		c := dialTest(t, addr, ClientConfig{})
		for _, split := range []string{dataset.SplitTrain, dataset.SplitVal} {
			for _, k := range []int{1, 3, 7} {
				for s := range k {
					for epoch := range 2 {
						tk := Ticket{Version: m.ID, Split: split, Shard: s, NumShards: k, Epoch: epoch, Seed: 42}
						items, err := collect(t, c, tk)
						if err != nil {
							t.Fatalf("batch %d %s shard %d/%d epoch %d: %v", batch, split, s, k, epoch, err)
						}
						r, err := dataset.NewReader(v, dataset.ReaderConfig{Split: split, Shard: s, NumShards: k, Seed: 42, Start: dataset.Position{Epoch: epoch}})
						if err != nil {
							t.Fatal(err)
						}
						if len(items) != r.EpochLen() {
							t.Fatalf("%s shard %d/%d: streamed %d examples, reader has %d per epoch", split, s, k, len(items), r.EpochLen())
						}
						for j, it := range items {
							pos := r.Position()
							want := r.Next()
							if it.Pos != pos || it.Next != r.Position() {
								t.Fatalf("%s shard %d/%d example %d: positions %v -> %v, reader %v -> %v", split, s, k, j, it.Pos, it.Next, pos, r.Position())
							}
							if !sameExample(it.Example, want) {
								t.Fatalf("%s shard %d/%d example %d: streamed %s differs from local %s", split, s, k, j, it.Example.ID, want.ID)
							}
						}
					}
				}
			}
		}
	}
}

// TestStreamResume checks that a stream from an offset is exactly the tail
// of the stream from the start of the epoch.
func TestStreamResume(t *testing.T) {
	st, m := shapesStore(t)
	_, addr := startServer(t, st, ServerConfig{MaxBatchBytes: 9000})
	c := dialTest(t, addr, ClientConfig{})
	tk := Ticket{Version: m.ID, Split: dataset.SplitTrain, Shard: 1, NumShards: 2, Epoch: 3, Seed: 7}
	full, err := collect(t, c, tk)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int{1, 2, len(full) - 1, len(full)} {
		tk.Offset = off
		tail, err := collect(t, c, tk)
		if err != nil {
			t.Fatalf("offset %d: %v", off, err)
		}
		if len(tail) != len(full)-off {
			t.Fatalf("offset %d: %d examples, want %d", off, len(tail), len(full)-off)
		}
		for j, it := range tail {
			w := full[off+j]
			if it.Pos != w.Pos || it.Next != w.Next || !sameExample(it.Example, w.Example) {
				t.Fatalf("offset %d example %d: %s at %v, want %s at %v", off, j, it.Example.ID, it.Pos, w.Example.ID, w.Pos)
			}
		}
	}
	if last := full[len(full)-1].Next; last != (dataset.Position{Epoch: 4}) {
		t.Fatalf("position after the epoch's last example is %v, want 4/0", last)
	}
}

func TestStreamWholeMatchesFile(t *testing.T) {
	st, m := shapesStore(t)
	v := openLocal(t, st, m.ID)
	_, addr := startServer(t, st, ServerConfig{MaxBatchBytes: 20000})
	c := dialTest(t, addr, ClientConfig{})
	items, err := collect(t, c, WholeTicket(m.ID))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != v.Len() {
		t.Fatalf("whole stream has %d rows, version %d", len(items), v.Len())
	}
	for i, it := range items {
		if it.Pos.Offset != i || !sameExample(it.Example, v.Example(i)) {
			t.Fatalf("row %d: streamed %s at %v, file has %s", i, it.Example.ID, it.Pos, v.Example(i).ID)
		}
	}
}

func TestStreamErrors(t *testing.T) {
	st, m := shapesStore(t)
	_, addr := startServer(t, st, ServerConfig{})
	c := dialTest(t, addr, ClientConfig{})
	unknown := strings.Repeat("ab", 32)
	train := Ticket{Version: m.ID, Split: dataset.SplitTrain, NumShards: 2}

	tests := []struct {
		name    string
		raw     string // sent as is when set
		tk      Ticket
		code    codes.Code
		is      error
		message string
	}{
		{name: "unknown version", tk: Ticket{Version: unknown, Whole: true}, code: codes.NotFound, is: dataset.ErrNotFound, message: "abababababab"},
		{name: "version not an id", raw: `{"version":"shapes","whole":true}`, code: codes.InvalidArgument, is: ErrTicket, message: "not a version id"},
		{name: "malformed json", raw: `{"version":`, code: codes.InvalidArgument, is: ErrTicket, message: "invalid ticket"},
		{name: "unknown field", raw: `{"version":"` + m.ID + `","whole":true,"shards":2}`, code: codes.InvalidArgument, is: ErrTicket, message: "shards"},
		{name: "trailing data", raw: `{"version":"` + m.ID + `","whole":true} {}`, code: codes.InvalidArgument, is: ErrTicket, message: "trailing"},
		{name: "shard >= n", raw: `{"version":"` + m.ID + `","split":"train","shard":2,"num_shards":2}`, code: codes.InvalidArgument, is: ErrTicket, message: "shard 2 of 2"},
		{name: "empty shard", tk: Ticket{Version: m.ID, Split: dataset.SplitVal, Shard: 11, NumShards: 12}, code: codes.InvalidArgument, is: ErrTicket, message: "empty"},
		{name: "offset past epoch", tk: Ticket{Version: m.ID, Split: dataset.SplitTrain, NumShards: 2, Offset: 16}, code: codes.InvalidArgument, is: ErrTicket, message: "offset 16 out of range"},
		{name: "bad split", raw: `{"version":"` + m.ID + `","split":"test","num_shards":1}`, code: codes.InvalidArgument, is: ErrTicket, message: "split"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.raw != "" {
				err = doGetRaw(c, tt.raw)
			} else {
				_, err = collect(t, c, tt.tk)
			}
			if err == nil {
				t.Fatal("no error")
			}
			if got := status.Code(err); got != tt.code {
				t.Errorf("code %v, want %v (%v)", got, tt.code, err)
			}
			if tt.is != nil && tt.raw == "" && !errors.Is(err, tt.is) {
				t.Errorf("%v does not wrap %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not say %q", err, tt.message)
			}
		})
	}
	// 30 train examples in 2 shards: offset 15 is the (empty) end of epoch.
	train.Offset = 15
	if items, err := collect(t, c, train); err != nil || len(items) != 0 {
		t.Errorf("offset at end of epoch: %d items, %v; want none", len(items), err)
	}
	// Client-side validation catches a bad ticket before any call.
	if _, err := collect(t, c, Ticket{Version: m.ID, Split: dataset.SplitTrain, Shard: 3, NumShards: 2}); !errors.Is(err, ErrTicket) {
		t.Errorf("client-side shard check: %v", err)
	}
}

// doGetRaw sends a hand-written ticket and reads the stream to its end.
func doGetRaw(c *Client, raw string) error {
	gs, err := c.fc.DoGet(context.Background(), &flight.Ticket{Ticket: []byte(raw)})
	if err != nil {
		return err
	}
	for {
		if _, err := gs.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

func TestInfoAndList(t *testing.T) {
	st, m1 := shapesStore(t)
	meta := dataset.Meta{Height: 8, Width: 8, Channels: 1, Classes: []string{"a", "b"}}
	m2 := registerExamples(t, st, "shapes", meta, patternExamples(meta, 5))
	_, addr := startServer(t, st, ServerConfig{})
	c := dialTest(t, addr, ClientConfig{})
	ctx := context.Background()

	for ref, want := range map[string]dataset.Manifest{"shapes": m2, "shapes@v1": m1, "shapes@latest": m2, "shapes@" + m1.ID[:8]: m1} {
		got, err := c.Info(ctx, ref)
		if err != nil {
			t.Fatalf("Info(%s): %v", ref, err)
		}
		if got.ID != want.ID || got.Seq != want.Seq || got.Examples != want.Examples || got.Counts[dataset.SplitTrain] != want.Counts[dataset.SplitTrain] {
			t.Errorf("Info(%s) = %s %s, want %s %s", ref, got.Ref(), dataset.ShortID(got.ID), want.Ref(), dataset.ShortID(want.ID))
		}
	}
	for _, ref := range []string{"nope", "shapes@v9"} {
		if _, err := c.Info(ctx, ref); !errors.Is(err, dataset.ErrNotFound) || status.Code(err) != codes.NotFound {
			t.Errorf("Info(%s) = %v, want NotFound", ref, err)
		}
	}
	if _, err := c.Info(ctx, "Bad Name"); !errors.Is(err, dataset.ErrBadRef) {
		t.Errorf("Info of a malformed ref: %v", err)
	}
	if _, err := c.fc.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"a", "b", "c"}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("3-element path: %v, want InvalidArgument", err)
	}
	fi, err := c.fc.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"shapes", "v1"}})
	if err != nil {
		t.Fatal(err)
	}
	if fi.TotalRecords != 40 || len(fi.Endpoint) != 1 {
		t.Errorf("flight info: %d records, %d endpoints", fi.TotalRecords, len(fi.Endpoint))
	}
	if tk, err := DecodeTicket(fi.Endpoint[0].Ticket.Ticket); err != nil || tk != WholeTicket(m1.ID) {
		t.Errorf("endpoint ticket %s: %v", fi.Endpoint[0].Ticket.Ticket, err)
	}
	schema, err := flight.DeserializeSchema(fi.Schema, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := dataset.ParseSchema(schema); err != nil || got.Height != 32 {
		t.Errorf("flight info schema: %+v, %v", got, err)
	}

	all, err := c.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID != m1.ID || all[1].ID != m2.ID {
		t.Errorf("List = %d versions", len(all))
	}
	if none, err := c.List(ctx, "other"); err != nil || len(none) != 0 {
		t.Errorf("List(other) = %d, %v", len(none), err)
	}
}

func TestFetch(t *testing.T) {
	st, m := shapesStore(t)
	_, addr := startServer(t, st, ServerConfig{MaxBatchBytes: 50000})
	c := dialTest(t, addr, ClientConfig{})
	ctx := context.Background()
	cache := filepath.Join(t.TempDir(), "cache")

	res, err := c.Fetch(ctx, "shapes", cache)
	if err != nil {
		t.Fatal(err)
	}
	if res.Cached || res.Path != CachePath(cache, m.ID) || res.Manifest.ID != m.ID {
		t.Fatalf("first fetch: %+v", res)
	}
	v, err := dataset.OpenVersionFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	if id := dataset.ContentID(v); id != m.ID {
		t.Fatalf("fetched content id %s, want %s", id, m.ID)
	}
	local := openLocal(t, st, m.ID)
	for i := range local.Len() {
		if !sameExample(v.Example(i), local.Example(i)) {
			t.Fatalf("row %d differs", i)
		}
	}
	v.Close()
	// The fetched file registers as the same version elsewhere.
	other, err := dataset.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if im, _, err := other.ImportFile(ctx, "copy", res.Path, m.ID, dataset.Source{}); err != nil || im.ID != m.ID {
		t.Fatalf("import fetched file: %v", err)
	}

	if res, err = c.Fetch(ctx, "shapes@v1", cache); err != nil || !res.Cached {
		t.Fatalf("second fetch: cached=%v, %v", res.Cached, err)
	}
	assertNoTemps(t, cache)

	damage := []struct {
		name string
		hurt func(path string) error
	}{
		{"flipped byte", func(p string) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 0xff
			return os.WriteFile(p, b, 0o644)
		}},
		{"truncated", func(p string) error { return os.Truncate(p, 1000) }},
		{"empty", func(p string) error { return os.WriteFile(p, nil, 0o644) }},
	}
	for _, d := range damage {
		if err := d.hurt(res.Path); err != nil {
			t.Fatal(err)
		}
		if _, err := verifyFile(ctx, res.Path, m.ID); !errors.Is(err, dataset.ErrCorrupt) {
			t.Fatalf("%s: verify says %v, want ErrCorrupt", d.name, err)
		}
		res, err = c.FetchVersion(ctx, m.ID, cache)
		if err != nil || res.Cached {
			t.Fatalf("%s: fetch after damage: cached=%v, %v", d.name, res.Cached, err)
		}
		if _, err := verifyFile(ctx, res.Path, m.ID); err != nil {
			t.Fatalf("%s: re-downloaded file: %v", d.name, err)
		}
	}
	assertNoTemps(t, cache)

	if _, err := c.FetchVersion(ctx, strings.Repeat("0", 64), cache); !errors.Is(err, dataset.ErrNotFound) {
		t.Errorf("fetch of an unknown id: %v", err)
	}
	if _, err := c.FetchVersion(ctx, "xyz", cache); !errors.Is(err, dataset.ErrBadRef) {
		t.Errorf("fetch of a malformed id: %v", err)
	}
	assertNoTemps(t, cache)
}

// TestFetchCorruptCacheServerGone: a damaged cache with no server to
// download from is an error naming the damage, and leaves no bad file.
func TestFetchCorruptCacheServerGone(t *testing.T) {
	st, m := shapesStore(t)
	srv, addr := startServer(t, st, ServerConfig{})
	c := dialTest(t, addr, ClientConfig{})
	ctx := context.Background()
	cache := t.TempDir()
	res, err := c.FetchVersion(ctx, m.ID, cache)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if err := os.Truncate(res.Path, 100); err != nil {
		t.Fatal(err)
	}
	_, err = c.FetchVersion(ctx, m.ID, cache)
	if err == nil {
		t.Fatal("fetch with a damaged cache and no server succeeded")
	}
	if _, serr := os.Stat(res.Path); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("damaged cache file still there (%v); fetch said %v", serr, err)
	}
	assertNoTemps(t, cache)
}

func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left in the cache", e.Name())
		}
	}
}

// TestLargeRows streams and fetches a version whose every row is above
// gRPC's default 4 MiB message limit.
func TestLargeRows(t *testing.T) {
	meta := dataset.Meta{Height: 1200, Width: 1200, Channels: 3, Classes: []string{"bg", "fg"}}
	st, err := dataset.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	exs := patternExamples(meta, 4) // 3 train, 1 val; 5.76 MB a row
	m := registerExamples(t, st, "big", meta, exs)
	_, addr := startServer(t, st, ServerConfig{})
	c := dialTest(t, addr, ClientConfig{})
	ctx := context.Background()

	items, err := collect(t, c, Ticket{Version: m.ID, Split: dataset.SplitTrain, NumShards: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, it.Example.ID)
		if !sameExample(it.Example, exs[slices.IndexFunc(exs, func(e dataset.Example) bool { return e.ID == it.Example.ID })]) {
			t.Fatalf("large example %s differs", it.Example.ID)
		}
	}
	slices.Sort(got)
	if want := []string{"ex-00000", "ex-00001", "ex-00003"}; !slices.Equal(got, want) {
		t.Fatalf("streamed %v, want %v", got, want)
	}
	res, err := c.Fetch(ctx, "big", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifyFile(ctx, res.Path, m.ID); err != nil {
		t.Fatal(err)
	}

	// A client that keeps gRPC's 4 MiB limit cannot take such a row: the
	// limits above are what make it work.
	small := dialTest(t, addr, ClientConfig{MaxMessageBytes: 4 << 20})
	if _, err := collect(t, small, WholeTicket(m.ID)); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("4 MiB client: %v, want ResourceExhausted", err)
	}
}

func TestDialUnreachable(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	_, err = Dial(context.Background(), addr)
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("dial of a closed port: %v", err)
	}
}

func TestTicketRoundTrip(t *testing.T) {
	id := strings.Repeat("a", 64)
	for _, tk := range []Ticket{
		WholeTicket(id),
		{Version: id, Split: dataset.SplitVal, Shard: 2, NumShards: 3, Epoch: 5, Seed: 1 << 63, Offset: 7},
	} {
		b, err := tk.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeTicket(b)
		if err != nil || got != tk {
			t.Errorf("round trip of %s: %+v, %v", b, got, err)
		}
	}
	for _, bad := range []Ticket{
		{},
		{Version: id, Whole: true, Shard: 1},
		{Version: id, Split: dataset.SplitTrain, NumShards: 0},
		{Version: id, Split: dataset.SplitTrain, NumShards: 1, Epoch: -1},
		{Version: id, Split: dataset.SplitTrain, NumShards: 1, Offset: -1},
	} {
		if _, err := bad.Encode(); !errors.Is(err, ErrTicket) {
			t.Errorf("Encode(%+v) = %v, want ErrTicket", bad, err)
		}
	}
}

// TestConcurrentStreamsAndEviction streams two versions from several
// goroutines through a server that keeps one version open, so versions are
// evicted while other streams still use them; every stream must still match
// the local reader, and a consumer that stops early must not hold anything.
func TestConcurrentStreamsAndEviction(t *testing.T) {
	st, m1 := shapesStore(t)
	meta := dataset.Meta{Height: 16, Width: 16, Channels: 3, Classes: []string{"a", "b", "c"}}
	m2 := registerExamples(t, st, "pattern", meta, patternExamples(meta, 30))
	srv, addr := startServer(t, st, ServerConfig{MaxBatchBytes: 4096, MaxOpenVersions: 1})
	c := dialTest(t, addr, ClientConfig{})
	versions := []*dataset.Version{openLocal(t, st, m1.ID), openLocal(t, st, m2.ID)}
	ids := []string{m1.ID, m2.ID}

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 8 {
		wg.Go(func() {
			for round := range 3 {
				vi, shard := (g+round)%2, g%3
				tk := Ticket{Version: ids[vi], Split: dataset.SplitTrain, Shard: shard, NumShards: 3, Epoch: round, Seed: uint64(g)}
				r, err := dataset.NewReader(versions[vi], dataset.ReaderConfig{Split: tk.Split, Shard: shard, NumShards: 3, Seed: tk.Seed, Start: tk.Position()})
				if err != nil {
					errs <- err
					return
				}
				n := 0
				for it, err := range c.Stream(context.Background(), tk) {
					if err != nil {
						errs <- fmt.Errorf("goroutine %d round %d: %w", g, round, err)
						return
					}
					if want := r.Next(); !sameExample(it.Example, want) {
						errs <- fmt.Errorf("goroutine %d round %d: %s, want %s", g, round, it.Example.ID, want.ID)
						return
					}
					n++
					if g%2 == 1 && n == 2 {
						break // an early stop cancels the call
					}
				}
				if g%2 == 0 && n != r.EpochLen() {
					errs <- fmt.Errorf("goroutine %d round %d: %d examples, want %d", g, round, n, r.EpochLen())
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Handlers of cancelled calls end shortly after their clients stop.
	waitFor(t, "at most one version open after all streams ended", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.open) <= 1
	})
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
