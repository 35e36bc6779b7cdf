package trainer

import (
	"context"

	"github.com/trainctl/trainctl/trainer/collective"
)

// Collective is what data-parallel training needs of the ring its ranks
// form; *collective.Comm implements it. Every rank calls the same methods
// in the same order with equal tags.
type Collective interface {
	// Rank is this rank, of Size.
	Rank() int
	Size() int
	// AllReduceInt64 reduces buf element-wise across the ranks, in place.
	AllReduceInt64(ctx context.Context, tag collective.Tag, buf []int64, op collective.Op) error
	// Broadcast copies root's buf into every rank's.
	Broadcast(ctx context.Context, tag collective.Tag, buf []byte, root int) error
	// Barrier returns once every rank has reached it.
	Barrier(ctx context.Context, tag collective.Tag) error
}
