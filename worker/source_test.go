package worker

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/dataset/stream"
)

// TestFlightSource fetches a version from a real Flight server on
// 127.0.0.1, then serves it from the cache with the server gone, repairs a
// damaged cache file, and prefers a local store.
func TestFlightSource(t *testing.T) {
	st, man := shapesStore(t)
	addr, stop := startFlight(t, st)
	ctx := context.Background()
	cache := t.TempDir()
	src, err := NewFlightSource(FlightSourceConfig{Addr: addr, CacheDir: cache, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	open := func(t *testing.T, s DatasetSource, ref, id string) {
		t.Helper()
		v, got, err := s.Open(ctx, ref, id)
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		if got != man.ID || v.Len() != testExamples || dataset.ContentID(v) != man.ID {
			t.Fatalf("opened version %s with %d examples, want %s with %d", dataset.ShortID(got), v.Len(), dataset.ShortID(man.ID), testExamples)
		}
	}

	t.Run("by ref", func(t *testing.T) { open(t, src, "shapes", "") })
	t.Run("by id", func(t *testing.T) { open(t, src, "shapes@v1", man.ID) })
	t.Run("damaged cache is fetched again", func(t *testing.T) {
		if err := os.WriteFile(stream.CachePath(cache, man.ID), []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
		open(t, src, "shapes@v1", man.ID)
	})
	stop()
	t.Run("cached, server gone", func(t *testing.T) { open(t, src, "shapes@v1", man.ID) })
	t.Run("not cached, server gone", func(t *testing.T) {
		other, err := NewFlightSource(FlightSourceConfig{Addr: addr, CacheDir: t.TempDir(), Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := other.Open(ctx, "shapes@v1", man.ID); err == nil {
			t.Fatal("Open succeeded without cache or server")
		}
	})
	t.Run("local store, no server", func(t *testing.T) {
		local, err := NewFlightSource(FlightSourceConfig{CacheDir: t.TempDir(), Store: st, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		open(t, local, "shapes@v1", man.ID)
		if _, _, err := local.Open(ctx, "shapes@v1", strings.Repeat("0", 64)); !errors.Is(err, dataset.ErrNotFound) {
			t.Errorf("unknown version without a server: %v, want ErrNotFound", err)
		}
		if _, _, err := local.Open(ctx, "shapes@v1", "xyz"); !errors.Is(err, dataset.ErrBadRef) {
			t.Errorf("malformed id: %v, want ErrBadRef", err)
		}
	})
	if _, err := NewFlightSource(FlightSourceConfig{Addr: addr}); err == nil {
		t.Error("NewFlightSource without a cache directory succeeded")
	}
}
