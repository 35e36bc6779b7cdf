package dataset

import (
	"fmt"
)

// Position is where a Reader stands: the epoch, and the offset within this
// shard's order of that epoch of the next example to be read. A trainer
// checkpoints it and passes it back as ReaderConfig.Start to resume with
// exactly the next example. Offset is always below the shard's epoch length;
// the position after an epoch's last example is {Epoch + 1, 0}.
type Position struct {
	Epoch  int `json:"epoch"`
	Offset int `json:"offset"`
}

// String formats the position as "epoch/offset".
func (p Position) String() string { return fmt.Sprintf("%d/%d", p.Epoch, p.Offset) }

// ReaderConfig selects which examples a Reader yields and from where.
type ReaderConfig struct {
	// Split is SplitTrain or SplitVal.
	Split string
	// Shard is this reader's shard, 0 <= Shard < NumShards.
	Shard int
	// NumShards is the number of shards (data-parallel ranks), at least 1.
	NumShards int
	// Seed picks the per-epoch shuffles; every shard of a job must use the
	// same seed so that the shards partition each epoch.
	Seed uint64
	// Start is the position of the first example to read. Start.Offset may
	// equal the shard's epoch length, meaning the start of the next epoch.
	Start Position
}

// Reader yields the examples of one shard of one split of a Version in the
// deterministic order of shard.go: for epoch e, the split's rows (in id
// order) are permuted by EpochOrder(len, Seed, e), and the shard is block
// Shard of NumShards of that permutation. It crosses epoch boundaries by
// itself and never ends; the caller decides when to stop.
//
// Next allocates nothing (one order buffer is reused across epochs) and the
// examples it returns are views into the Version's memory, so a trainer can
// pull batches cheaply; it must not modify them. A Reader is not safe for
// concurrent use, but any number of Readers may share one Version.
type Reader struct {
	v         *Version
	seed      uint64
	shard     int
	numShards int
	splitRows []int // row indices of the split, ascending
	perm      []int // EpochOrder buffer, len(splitRows)
	rows      []int // this shard's rows of the current epoch, in order
	epoch     int   // epoch of rows; -1 before the first fill
	pos       Position
}

// NewReader returns a Reader over v as cfg says. It fails, with an error
// saying which value is wrong, for an unknown split, a shard out of range
// (wrapping ErrShard), a shard that holds no examples (more shards than
// examples), a negative epoch or offset, or an offset beyond the shard's
// epoch length.
func NewReader(v *Version, cfg ReaderConfig) (*Reader, error) {
	if cfg.Split != SplitTrain && cfg.Split != SplitVal {
		return nil, fmt.Errorf("reader: split %q (want %q or %q)", cfg.Split, SplitTrain, SplitVal)
	}
	splitRows := v.SplitIndices(cfg.Split)
	n, err := ShardLen(len(splitRows), cfg.Shard, cfg.NumShards)
	if err != nil {
		return nil, fmt.Errorf("reader: %w", err)
	}
	if n == 0 {
		return nil, fmt.Errorf("reader: %w: shard %d of %d of split %s is empty (the split has %d examples)",
			ErrShard, cfg.Shard, cfg.NumShards, cfg.Split, len(splitRows))
	}
	p := cfg.Start
	switch {
	case p.Epoch < 0:
		return nil, fmt.Errorf("reader: start epoch %d is negative", p.Epoch)
	case p.Offset < 0 || p.Offset > n:
		return nil, fmt.Errorf("reader: start offset %d out of range: shard %d of %d of split %s has %d examples per epoch",
			p.Offset, cfg.Shard, cfg.NumShards, cfg.Split, n)
	case p.Offset == n:
		p = Position{Epoch: p.Epoch + 1}
	}
	return &Reader{
		v:         v,
		seed:      cfg.Seed,
		shard:     cfg.Shard,
		numShards: cfg.NumShards,
		splitRows: splitRows,
		perm:      make([]int, len(splitRows)),
		rows:      make([]int, n),
		epoch:     -1,
		pos:       p,
	}, nil
}

// EpochLen is the number of examples this shard yields per epoch. Shards of
// one split differ by at most one.
func (r *Reader) EpochLen() int { return len(r.rows) }

// Position is the position of the example the next call to Next returns.
func (r *Reader) Position() Position { return r.pos }

// Next returns the example at Position and advances past it, into the next
// epoch after the last example of an epoch.
func (r *Reader) Next() Example {
	if r.epoch != r.pos.Epoch {
		r.fill(r.pos.Epoch)
	}
	e := r.v.Example(r.rows[r.pos.Offset])
	r.pos.Offset++
	if r.pos.Offset == len(r.rows) {
		r.pos = Position{Epoch: r.pos.Epoch + 1}
	}
	return e
}

// NextBatch fills dst with the next len(dst) examples, as repeated calls to
// Next would, and returns dst. Reusing dst across steps makes a training
// step's data pull allocation-free.
func (r *Reader) NextBatch(dst []Example) []Example {
	for i := range dst {
		dst[i] = r.Next()
	}
	return dst
}

// EpochRows returns the Version row indices this shard yields in epoch, in
// order, without moving the reader. The slice is the caller's.
func (r *Reader) EpochRows(epoch int) []int {
	if r.epoch != epoch {
		r.fill(epoch)
	}
	return append([]int(nil), r.rows...)
}

// fill computes the shard's rows of epoch into r.rows.
func (r *Reader) fill(epoch int) {
	fillEpochOrder(r.perm, r.seed, epoch)
	lo, hi, _ := shardBounds(len(r.perm), r.shard, r.numShards) // validated in NewReader
	for j, k := range r.perm[lo:hi] {
		r.rows[j] = r.splitRows[k]
	}
	r.epoch = epoch
}
