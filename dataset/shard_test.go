package dataset

import (
	"errors"
	"slices"
	"testing"
)

func TestEpochOrderIsPermutation(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 10, 257, 1000} {
		got := EpochOrder(n, 7, 3)
		if len(got) != n {
			t.Fatalf("n=%d: len %d", n, len(got))
		}
		sorted := slices.Sorted(slices.Values(got))
		for i, v := range sorted {
			if v != i {
				t.Fatalf("n=%d: not a permutation of 0..n-1: sorted[%d]=%d", n, i, v)
			}
		}
	}
}

// TestEpochOrderGolden pins the exact orders, so a change of generator,
// seeding or shuffle (which would silently change every resumed job's data
// order) fails here.
func TestEpochOrderGolden(t *testing.T) {
	tests := []struct {
		seed  uint64
		epoch int
		want  []int
	}{
		{1, 0, []int{1, 6, 0, 9, 4, 8, 7, 3, 2, 5}},
		{1, 1, []int{8, 5, 9, 1, 3, 2, 7, 0, 6, 4}},
		{42, 7, []int{4, 8, 0, 5, 9, 3, 2, 7, 6, 1}},
	}
	for _, tt := range tests {
		if got := EpochOrder(10, tt.seed, tt.epoch); !slices.Equal(got, tt.want) {
			t.Errorf("EpochOrder(10, %d, %d) = %v, want %v", tt.seed, tt.epoch, got, tt.want)
		}
	}
}

func TestEpochOrderDeterministicAndVaried(t *testing.T) {
	const n = 100
	a, b := EpochOrder(n, 1, 0), EpochOrder(n, 1, 0)
	if !slices.Equal(a, b) {
		t.Fatal("same (seed, epoch) gave different orders")
	}
	seen := map[string]bool{}
	for _, se := range []struct {
		seed  uint64
		epoch int
	}{{1, 0}, {1, 1}, {1, 2}, {2, 0}, {2, 1}, {0, 0}} {
		o := EpochOrder(n, se.seed, se.epoch)
		key := string(intsKey(o))
		if seen[key] {
			t.Errorf("seed %d epoch %d repeats an earlier order", se.seed, se.epoch)
		}
		seen[key] = true
	}
}

func TestShardPartitions(t *testing.T) {
	for _, n := range []int{0, 1, 5, 10, 64, 101} {
		order := EpochOrder(n, 3, 1)
		for _, k := range []int{1, 2, 3, 7, n + 1, n + 5} {
			seen := make([]int, n)
			minLen, maxLen := n+1, -1
			for s := range k {
				part, err := Shard(order, s, k)
				if err != nil {
					t.Fatalf("n=%d k=%d shard %d: %v", n, k, s, err)
				}
				if l, _ := ShardLen(n, s, k); l != len(part) {
					t.Fatalf("n=%d k=%d shard %d: ShardLen %d, Shard len %d", n, k, s, l, len(part))
				}
				minLen, maxLen = min(minLen, len(part)), max(maxLen, len(part))
				for _, v := range part {
					seen[v]++
				}
			}
			for v, c := range seen {
				if c != 1 {
					t.Fatalf("n=%d k=%d: element %d in %d shards", n, k, v, c)
				}
			}
			if maxLen-minLen > 1 {
				t.Fatalf("n=%d k=%d: shard sizes range %d..%d", n, k, minLen, maxLen)
			}
		}
	}
}

func TestShardContiguous(t *testing.T) {
	order := []int{10, 11, 12, 13, 14, 15, 16}
	want := [][]int{{10, 11, 12}, {13, 14}, {15, 16}}
	for s, w := range want {
		got, err := Shard(order, s, 3)
		if err != nil || !slices.Equal(got, w) {
			t.Errorf("Shard(_, %d, 3) = %v, %v; want %v", s, got, err, w)
		}
	}
}

func TestShardErrors(t *testing.T) {
	tests := []struct{ shard, num int }{{0, 0}, {0, -1}, {3, 3}, {4, 3}, {-1, 3}}
	for _, tt := range tests {
		if _, err := Shard([]int{1, 2, 3}, tt.shard, tt.num); !errors.Is(err, ErrShard) {
			t.Errorf("Shard(_, %d, %d) error = %v, want ErrShard", tt.shard, tt.num, err)
		}
	}
}

func intsKey(v []int) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = append(b, byte(x), byte(x>>8), byte(x>>16), byte(x>>24))
	}
	return b
}
