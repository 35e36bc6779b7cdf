package dataset

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
)

// ErrShard is returned (wrapped) when a shard index or shard count is out of
// range, so callers (and the Flight server) can tell bad requests from
// failures.
var ErrShard = errors.New("invalid shard")

// EpochOrder returns a permutation of 0..n-1 that depends only on seed and
// epoch. Every worker of a job computes the same order for the same epoch
// and then takes its own part with Shard, so no coordination is needed.
//
// The permutation is a Fisher–Yates shuffle driven by a PCG-DXSM generator
// (math/rand/v2.PCG, whose output stream is fixed by its specification) and
// an unbiased bounded draw implemented here, so the order is the same on
// every platform and Go release; rand.Shuffle is deliberately not used
// because its algorithm is not part of its contract. The generator is seeded
// from (seed, epoch) through a SplitMix64 finaliser so that neighbouring
// seeds and epochs give unrelated orders. A negative epoch is treated as its
// two's complement; n <= 0 yields an empty order.
func EpochOrder(n int, seed uint64, epoch int) []int {
	if n <= 0 {
		return []int{}
	}
	order := make([]int, n)
	fillEpochOrder(order, seed, epoch)
	return order
}

// fillEpochOrder writes the EpochOrder permutation of 0..len(order)-1 into
// order, so a Reader can reuse one buffer across epochs.
func fillEpochOrder(order []int, seed uint64, epoch int) {
	for i := range order {
		order[i] = i
	}
	s1 := splitmix64(seed)
	s2 := splitmix64(s1 ^ splitmix64(uint64(epoch)+0x9e3779b97f4a7c15))
	src := rand.NewPCG(s1, s2)
	for i := len(order) - 1; i > 0; i-- {
		j := int(boundedUint64(src, uint64(i)+1))
		order[i], order[j] = order[j], order[i]
	}
}

// splitmix64 is the SplitMix64 output function: a bijective mixer used to
// turn small, correlated inputs (seed 1, epoch 2, ...) into well-spread
// generator states.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// boundedUint64 returns a uniform value in [0, n) for n > 0 using Lemire's
// multiply-and-reject method, consuming src.Uint64 only.
func boundedUint64(src *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(src.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(src.Uint64(), n)
		}
	}
	return hi
}

// Shard returns shard number shard (0-based) of numShards of order.
//
// Shards are contiguous blocks of order: the first len(order)%numShards
// shards hold one element more than the rest, so every element lands in
// exactly one shard and sizes differ by at most one; with more shards than
// elements the trailing shards are empty. Because order is already a
// shuffled permutation, contiguous blocks are as random as strided ones and
// can be returned without copying: the result aliases order.
//
// It returns an error wrapping ErrShard if numShards < 1 or shard is not in
// [0, numShards).
func Shard(order []int, shard, numShards int) ([]int, error) {
	lo, hi, err := shardBounds(len(order), shard, numShards)
	if err != nil {
		return nil, err
	}
	return order[lo:hi:hi], nil
}

// ShardLen is the number of elements Shard returns for an order of length n,
// without computing the order.
func ShardLen(n, shard, numShards int) (int, error) {
	lo, hi, err := shardBounds(n, shard, numShards)
	return hi - lo, err
}

// shardBounds is the half-open range [lo, hi) of shard within n elements.
func shardBounds(n, shard, numShards int) (lo, hi int, err error) {
	switch {
	case numShards < 1:
		return 0, 0, fmt.Errorf("%w: %d shards (want at least 1)", ErrShard, numShards)
	case shard < 0 || shard >= numShards:
		return 0, 0, fmt.Errorf("%w: shard %d of %d (want 0..%d)", ErrShard, shard, numShards, numShards-1)
	}
	base, rem := n/numShards, n%numShards
	lo = shard*base + min(shard, rem)
	hi = lo + base
	if shard < rem {
		hi++
	}
	return lo, hi, nil
}
