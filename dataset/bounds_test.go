package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// rawVersionFile writes an Arrow file with schema s (which may lie about
// the geometry) holding batches record batches of rowsPer rows each, every
// image and mask of the given widths and all zero, with the writer
// options opts (compression).
func rawVersionFile(t *testing.T, s *arrow.Schema, batches, rowsPer, imgBytes, maskBytes int, opts ...ipc.Option) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw, err := ipc.NewFileWriter(&buf, append([]ipc.Option{ipc.WithSchema(s)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	rb := array.NewRecordBuilder(memory.DefaultAllocator, s)
	defer rb.Release()
	img, mask := make([]byte, imgBytes), make([]byte, maskBytes)
	row := 0
	for range batches {
		for range rowsPer {
			rb.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("ex%09d", row))
			rb.Field(1).(*array.StringBuilder).Append(SplitTrain)
			rb.Field(2).(*array.FixedSizeBinaryBuilder).Append(img)
			rb.Field(3).(*array.FixedSizeBinaryBuilder).Append(mask)
			row++
		}
		rec := rb.NewRecordBatch()
		err := fw.Write(rec)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// lyingSchema is NewSchema(m) with height and width metadata replaced.
func lyingSchema(m Meta, height, width string) *arrow.Schema {
	s := NewSchema(m)
	md := s.Metadata()
	keys, vals := md.Keys(), append([]string(nil), md.Values()...)
	for i, k := range keys {
		switch k {
		case MetaKeyHeight:
			vals[i] = height
		case MetaKeyWidth:
			vals[i] = width
		}
	}
	nm := arrow.NewMetadata(keys, vals)
	return arrow.NewSchema(s.Fields(), &nm)
}

// TestOpenHostileVersionFile feeds version files that declare more than
// they hold: each must be refused with an error, without the reader
// allocating what the file declares.
func TestOpenHostileVersionFile(t *testing.T) {
	small := Meta{Height: 2, Width: 2, Channels: 1, Classes: []string{"a", "b"}}
	big := Meta{Height: MaxImageSide, Width: MaxImageSide, Channels: 3, Classes: []string{"a", "b"}}
	huge := strconv.Itoa(1 << 30)
	tests := []struct {
		name string
		data func(t *testing.T) []byte
		want error
	}{
		{
			// Zeros compress to nothing: two 64 MiB rows in a few kB.
			name: "compression bomb",
			data: func(t *testing.T) []byte {
				return rawVersionFile(t, NewSchema(big), 1, 2, big.ImageBytes(), big.MaskBytes(), ipc.WithZstd())
			},
			want: ErrCorrupt,
		},
		{
			name: "huge geometry",
			data: func(t *testing.T) []byte {
				return rawVersionFile(t, lyingSchema(small, huge, huge), 1, 1, small.ImageBytes(), small.MaskBytes())
			},
			want: ErrSchema,
		},
		{
			name: "too many record batches",
			data: func(t *testing.T) []byte {
				return rawVersionFile(t, NewSchema(small), maxVersionBatches+1, 1, small.ImageBytes(), small.MaskBytes())
			},
			want: ErrCorrupt,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.data(t)
			v, err := openVersionBytes(data)
			if err == nil {
				v.Close()
				t.Fatalf("opened a hostile %d-byte file", len(data))
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want one wrapping %v", err, tt.want)
			}
			t.Logf("%d bytes: %v", len(data), err)
		})
	}
}

// TestOpenManyBatchesWithinBudget checks that reading a file with the most
// record batches allowed stays within the decode budget: reading an
// uncompressed file allocates (next to) nothing per batch.
func TestOpenManyBatchesWithinBudget(t *testing.T) {
	m := Meta{Height: 2, Width: 2, Channels: 1, Classes: []string{"a", "b"}}
	data := rawVersionFile(t, NewSchema(m), maxVersionBatches, 1, m.ImageBytes(), m.MaskBytes())
	v, err := openVersionBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if v.Len() != maxVersionBatches {
		t.Fatalf("%d examples, want %d", v.Len(), maxVersionBatches)
	}
}
