package dataset

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// readerTestVersion writes and opens a version of n 4×4 RGB examples whose
// every third example is in the val split; image bytes encode the row.
func readerTestVersion(t testing.TB, n int) *Version {
	t.Helper()
	m := Meta{Height: 4, Width: 4, Channels: 3, Classes: []string{"bg", "fg"}}
	path := filepath.Join(t.TempDir(), "v.arrow")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	vw, err := NewVersionWriter(f, m)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		split := SplitTrain
		if i%3 == 2 {
			split = SplitVal
		}
		img := make([]byte, m.ImageBytes())
		for j := range img {
			img[j] = byte(i + j)
		}
		mask := make([]byte, m.MaskBytes())
		mask[0] = byte(i % 2)
		if err := vw.Write(Example{ID: fmt.Sprintf("ex-%05d", i), Split: split, Image: img, Mask: mask}); err != nil {
			t.Fatal(err)
		}
	}
	if err := vw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	v, err := OpenVersionFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func mustReader(t testing.TB, v *Version, cfg ReaderConfig) *Reader {
	t.Helper()
	r, err := NewReader(v, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func readIDs(r *Reader, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = r.Next().ID
	}
	return ids
}

func TestReaderShardsPartitionSplit(t *testing.T) {
	v := readerTestVersion(t, 40) // 27 train, 13 val
	for _, split := range []string{SplitTrain, SplitVal} {
		var want []string
		for _, i := range v.SplitIndices(split) {
			want = append(want, v.Example(i).ID)
		}
		for _, k := range []int{1, 2, 3, 7, len(want), len(want) + 3} {
			for epoch := range 2 {
				var got []string
				for s := range k {
					r, err := NewReader(v, ReaderConfig{Split: split, Shard: s, NumShards: k, Seed: 9, Start: Position{Epoch: epoch}})
					if s >= len(want) {
						if !errors.Is(err, ErrShard) {
							t.Fatalf("%s k=%d shard %d: empty shard gave %v, want ErrShard", split, k, s, err)
						}
						continue
					}
					if err != nil {
						t.Fatal(err)
					}
					n := r.EpochLen()
					if n < len(want)/k || n > len(want)/k+1 {
						t.Fatalf("%s k=%d shard %d: %d examples per epoch of %d", split, k, s, n, len(want))
					}
					for range n {
						e := r.Next()
						if e.Split != split {
							t.Fatalf("%s reader yielded %s example %s", split, e.Split, e.ID)
						}
						got = append(got, e.ID)
					}
					if p := r.Position(); p != (Position{Epoch: epoch + 1}) {
						t.Fatalf("after a whole epoch position is %v, want %d/0", p, epoch+1)
					}
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Fatalf("%s k=%d epoch %d: union of shards is %d ids, not the split's %d (or has repeats)", split, k, epoch, len(got), len(want))
				}
			}
		}
	}
}

func TestReaderOrderDependsOnSeedAndEpoch(t *testing.T) {
	v := readerTestVersion(t, 60)
	cfg := ReaderConfig{Split: SplitTrain, NumShards: 1, Seed: 5}
	a := readIDs(mustReader(t, v, cfg), 80) // crosses into epoch 1 (40 train)
	b := readIDs(mustReader(t, v, cfg), 80)
	if !slices.Equal(a, b) {
		t.Fatal("same seed gave different sequences")
	}
	if slices.Equal(a[:40], a[40:]) {
		t.Fatal("epochs 0 and 1 have the same order")
	}
	cfg.Seed = 6
	if c := readIDs(mustReader(t, v, cfg), 40); slices.Equal(a[:40], c) {
		t.Fatal("seeds 5 and 6 gave the same order")
	}
}

func TestReaderResume(t *testing.T) {
	v := readerTestVersion(t, 50) // 34 train
	for _, k := range []int{1, 3} {
		cfg := ReaderConfig{Split: SplitTrain, Shard: k - 1, NumShards: k, Seed: 11}
		r := mustReader(t, v, cfg)
		total := 3 * r.EpochLen()
		var seq []string
		var pos []Position
		for range total {
			pos = append(pos, r.Position())
			seq = append(seq, r.Next().ID)
		}
		for _, at := range []int{0, 1, r.EpochLen() - 1, r.EpochLen(), r.EpochLen() + 2, total - 1} {
			cfg.Start = pos[at]
			if got := readIDs(mustReader(t, v, cfg), total-at); !slices.Equal(got, seq[at:]) {
				t.Errorf("k=%d resume at %d (%v): tail differs", k, at, pos[at])
			}
		}
		// An offset equal to the epoch length is the start of the next epoch.
		cfg.Start = Position{Epoch: 0, Offset: r.EpochLen()}
		rr := mustReader(t, v, cfg)
		if p := rr.Position(); p != (Position{Epoch: 1}) {
			t.Errorf("start at end of epoch 0 normalised to %v, want 1/0", p)
		}
		if got := readIDs(rr, r.EpochLen()); !slices.Equal(got, seq[r.EpochLen():2*r.EpochLen()]) {
			t.Errorf("k=%d start at end of epoch 0 does not yield epoch 1", k)
		}
	}
}

func TestReaderRowsMatchEpochOrder(t *testing.T) {
	v := readerTestVersion(t, 30)
	split := v.SplitIndices(SplitTrain)
	order := EpochOrder(len(split), 3, 2)
	part, err := Shard(order, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	r := mustReader(t, v, ReaderConfig{Split: SplitTrain, Shard: 1, NumShards: 2, Seed: 3, Start: Position{Epoch: 2}})
	for j, k := range part {
		want := v.Example(split[k])
		got := r.Next()
		if got.ID != want.ID || !slices.Equal(got.Image, want.Image) || !slices.Equal(got.Mask, want.Mask) {
			t.Fatalf("example %d: got %s, want %s", j, got.ID, want.ID)
		}
	}
	if rows := r.EpochRows(2); len(rows) != len(part) || rows[0] != split[part[0]] {
		t.Fatalf("EpochRows(2) = %v, want the rows of %v", rows, part)
	}
}

func TestReaderErrors(t *testing.T) {
	v := readerTestVersion(t, 10) // 7 train
	tests := []struct {
		name string
		cfg  ReaderConfig
		is   error
	}{
		{"unknown split", ReaderConfig{Split: "test", NumShards: 1}, nil},
		{"no shards", ReaderConfig{Split: SplitTrain}, ErrShard},
		{"shard >= n", ReaderConfig{Split: SplitTrain, Shard: 2, NumShards: 2}, ErrShard},
		{"negative shard", ReaderConfig{Split: SplitTrain, Shard: -1, NumShards: 2}, ErrShard},
		{"empty shard", ReaderConfig{Split: SplitTrain, Shard: 7, NumShards: 8}, ErrShard},
		{"offset past end", ReaderConfig{Split: SplitTrain, NumShards: 1, Start: Position{Offset: 8}}, nil},
		{"negative offset", ReaderConfig{Split: SplitTrain, NumShards: 1, Start: Position{Offset: -1}}, nil},
		{"negative epoch", ReaderConfig{Split: SplitTrain, NumShards: 1, Start: Position{Epoch: -1}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(v, tt.cfg)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("error %v does not wrap %v", err, tt.is)
			}
		})
	}
}

func TestReaderNextDoesNotAllocate(t *testing.T) {
	v := readerTestVersion(t, 100)
	r := mustReader(t, v, ReaderConfig{Split: SplitTrain, NumShards: 2, Seed: 1})
	batch := make([]Example, 8)
	r.NextBatch(batch) // first epoch fill
	// Crossing epochs refills the reused buffers, so it is included here.
	if n := testing.AllocsPerRun(100, func() { r.NextBatch(batch) }); n != 0 {
		t.Fatalf("NextBatch allocates %.1f times per call", n)
	}
}
