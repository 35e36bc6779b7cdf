package stream

import (
	"context"
	"fmt"
	"testing"

	"github.com/trainctl/trainctl/dataset"
)

// benchStore holds "bench": 300 examples of 128×128×3 (the UNet-S input),
// 200 of them in the train split.
func benchStore(b *testing.B) (*dataset.Store, dataset.Manifest) {
	b.Helper()
	st, err := dataset.OpenStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	meta := dataset.Meta{Height: 128, Width: 128, Channels: 3, Classes: dataset.TrimapClasses()}
	return st, registerExamples(b, st, "bench", meta, patternExamples(meta, 300))
}

// trainBytes is the image and mask bytes of the train split of m.
func trainBytes(m dataset.Manifest) int64 {
	return int64(m.Counts[dataset.SplitTrain]) * int64(m.Meta.ImageBytes()+m.Meta.MaskBytes())
}

// BenchmarkFlightStream streams the whole train split (one shard of one,
// one epoch) over loopback TCP and copies every image and mask into a
// reused batch buffer, as a trainer filling its input tensor would.
func BenchmarkFlightStream(b *testing.B) {
	st, m := benchStore(b)
	for _, batch := range []int{512 << 10, DefaultMaxBatchBytes, 8 << 20} {
		b.Run(fmt.Sprintf("batch=%dKiB", batch>>10), func(b *testing.B) {
			_, addr := startServer(b, st, ServerConfig{MaxBatchBytes: batch})
			c := dialTest(b, addr, ClientConfig{})
			tk := Ticket{Version: m.ID, Split: dataset.SplitTrain, NumShards: 1, Seed: 1}
			buf := make([]byte, m.Meta.ImageBytes()+m.Meta.MaskBytes())
			b.SetBytes(trainBytes(m))
			b.ResetTimer()
			for b.Loop() {
				n := 0
				for it, err := range c.Stream(context.Background(), tk) {
					if err != nil {
						b.Fatal(err)
					}
					copy(buf[copy(buf, it.Example.Image):], it.Example.Mask)
					n++
				}
				if n != m.Counts[dataset.SplitTrain] {
					b.Fatalf("streamed %d examples, want %d", n, m.Counts[dataset.SplitTrain])
				}
			}
			b.ReportMetric(float64(b.N*m.Counts[dataset.SplitTrain])/b.Elapsed().Seconds(), "examples/s")
		})
	}
}

// BenchmarkLocalRead reads the same split from the version file: opening
// it (OpenVersionFile loads and indexes the whole file) and iterating with a
// Reader, or iterating an already opened version; bytes are copied as in
// BenchmarkFlightStream.
func BenchmarkLocalRead(b *testing.B) {
	st, m := benchStore(b)
	buf := make([]byte, m.Meta.ImageBytes()+m.Meta.MaskBytes())
	read := func(b *testing.B, v *dataset.Version) {
		r, err := dataset.NewReader(v, dataset.ReaderConfig{Split: dataset.SplitTrain, NumShards: 1, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		for range r.EpochLen() {
			e := r.Next()
			copy(buf[copy(buf, e.Image):], e.Mask)
		}
	}
	b.Run("open+iterate", func(b *testing.B) {
		b.SetBytes(trainBytes(m))
		for b.Loop() {
			v, err := dataset.OpenVersionFile(st.DataPath(m.ID))
			if err != nil {
				b.Fatal(err)
			}
			read(b, v)
			v.Close()
		}
		b.ReportMetric(float64(b.N*m.Counts[dataset.SplitTrain])/b.Elapsed().Seconds(), "examples/s")
	})
	b.Run("iterate", func(b *testing.B) {
		v, err := dataset.OpenVersionFile(st.DataPath(m.ID))
		if err != nil {
			b.Fatal(err)
		}
		defer v.Close()
		b.SetBytes(trainBytes(m))
		for b.Loop() {
			read(b, v)
		}
		b.ReportMetric(float64(b.N*m.Counts[dataset.SplitTrain])/b.Elapsed().Seconds(), "examples/s")
	})
}
