package dataset

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Bounds on what reading a version file may cost, whoever wrote it. A
// version file can arrive from outside (an upload, a blob registered by
// digest), so every count it declares is checked before it is used: a
// hostile file is refused as corrupt instead of making the reader allocate
// what it says.
const (
	// MaxImageSide bounds Meta.Height and Meta.Width (ingest and the
	// generator resize to at most this).
	MaxImageSide = 4096
	// maxVersionBatches bounds the record batches of a version file: the
	// writer puts up to 256 rows in each, so 4M examples fit.
	maxVersionBatches = 1 << 14
	// maxVersionRows bounds the examples of a version file.
	maxVersionRows = 1 << 22
	// maxDecodeBytes bounds the memory the Arrow reader may allocate while
	// reading a version file. The canonical file is uncompressed and read
	// in place, so reading it allocates next to nothing; a file with
	// compressed buffers would have them inflated to the sizes it
	// declares, which this refuses beyond the bound.
	maxDecodeBytes = 64 << 20
)

// errDecodeBudget is the panic value of a budgetAllocator over its budget;
// openVersionBytes recovers it into ErrCorrupt.
type errDecodeBudget struct {
	want, budget int
}

func (e errDecodeBudget) Error() string {
	return fmt.Sprintf("decoding needs more than %d bytes of memory (asked for %d more); compressed version files are not accepted", e.budget, e.want)
}

// budgetAllocator is a memory.Allocator that panics with errDecodeBudget
// instead of allocating past budget bytes in all (live or freed: a reader
// that allocates, frees and allocates again is as suspect).
type budgetAllocator struct {
	mem    memory.Allocator
	used   int
	budget int
}

func newBudgetAllocator(budget int) *budgetAllocator {
	return &budgetAllocator{mem: memory.DefaultAllocator, budget: budget}
}

func (a *budgetAllocator) charge(n int) {
	if n < 0 || n > a.budget-a.used {
		panic(errDecodeBudget{want: n, budget: a.budget})
	}
	a.used += n
}

// Allocate allocates size bytes, within the budget.
func (a *budgetAllocator) Allocate(size int) []byte {
	a.charge(size)
	return a.mem.Allocate(size)
}

// Reallocate grows or shrinks b to size bytes, within the budget.
func (a *budgetAllocator) Reallocate(size int, b []byte) []byte {
	if size > len(b) {
		a.charge(size - len(b))
	}
	return a.mem.Reallocate(size, b)
}

// Free releases b.
func (a *budgetAllocator) Free(b []byte) { a.mem.Free(b) }
