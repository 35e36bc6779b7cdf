package collective

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"unsafe"
)

// Frame kinds.
const (
	kindReduce    uint8 = 1 // a chunk of an all-reduce (reduce-scatter or all-gather)
	kindBroadcast uint8 = 2 // a chunk of a broadcast
	kindDigest    uint8 = 3 // the SHA-256 of a broadcast's data
	kindAbort     uint8 = 4 // a failure, naming the culprit rank in Bucket
	kindKeepalive uint8 = 5 // the sender is alive, waiting on its own predecessor
)

// headerLen is the size of a frame header: kind, op, 2 spare bytes,
// bucket (int32), step (int64), layout (uint64), count (uint64: the
// collective's element or byte count), phase (uint32: the algorithm's step),
// payload length (uint32), CRC-32C of the payload (uint32).
const headerLen = 1 + 1 + 2 + 4 + 8 + 8 + 8 + 4 + 4 + 4

// maxAbortReason bounds the reason an abort frame carries.
const maxAbortReason = 1024

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header is a frame's header.
type header struct {
	kind, op uint8
	tag      Tag
	count    uint64
	phase    uint32
	plen     uint32
	crc      uint32
}

func (h *header) put(b []byte) {
	b[0], b[1], b[2], b[3] = h.kind, h.op, 0, 0
	binary.LittleEndian.PutUint32(b[4:], uint32(int32(h.tag.Bucket)))
	binary.LittleEndian.PutUint64(b[8:], uint64(h.tag.Step))
	binary.LittleEndian.PutUint64(b[16:], h.tag.Layout)
	binary.LittleEndian.PutUint64(b[24:], h.count)
	binary.LittleEndian.PutUint32(b[32:], h.phase)
	binary.LittleEndian.PutUint32(b[36:], h.plen)
	binary.LittleEndian.PutUint32(b[40:], h.crc)
}

func (h *header) get(b []byte) {
	h.kind, h.op = b[0], b[1]
	h.tag.Bucket = int(int32(binary.LittleEndian.Uint32(b[4:])))
	h.tag.Step = int64(binary.LittleEndian.Uint64(b[8:]))
	h.tag.Layout = binary.LittleEndian.Uint64(b[16:])
	h.count = binary.LittleEndian.Uint64(b[24:])
	h.phase = binary.LittleEndian.Uint32(b[32:])
	h.plen = binary.LittleEndian.Uint32(b[36:])
	h.crc = binary.LittleEndian.Uint32(b[40:])
}

// writeFrame writes h (with payload's length and CRC) and payload.
func writeFrame(w io.Writer, hbuf []byte, h header, payload []byte) error {
	h.plen = uint32(len(payload))
	h.crc = crc32.Checksum(payload, castagnoli)
	h.put(hbuf)
	if _, err := w.Write(hbuf); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// readFrame reads one frame into h and, if its payload fits maxPayload,
// into scratch (returned resliced); it checks framing and the CRC.
func readFrame(r io.Reader, hbuf []byte, h *header, scratch []byte) ([]byte, error) {
	if _, err := io.ReadFull(r, hbuf); err != nil {
		return nil, err
	}
	h.get(hbuf)
	if h.kind < kindReduce || h.kind > kindKeepalive || int(h.plen) > len(scratch) {
		return nil, fmt.Errorf("%w: frame kind %d with %d payload bytes", ErrCorrupt, h.kind, h.plen)
	}
	p := scratch[:h.plen]
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, err
	}
	if crc32.Checksum(p, castagnoli) != h.crc {
		return nil, fmt.Errorf("%w: payload checksum", ErrCorrupt)
	}
	return p, nil
}

// littleEndian reports whether int64s are stored little-endian here, so
// that a []int64 is its own wire encoding.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// int64Bytes returns the wire encoding of xs: xs's own memory on a
// little-endian machine, else an encoded copy in tmp (grown as needed).
func int64Bytes(xs []int64, tmp *[]byte) []byte {
	if len(xs) == 0 {
		return nil
	}
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&xs[0])), len(xs)*8)
	}
	if cap(*tmp) < len(xs)*8 {
		*tmp = make([]byte, len(xs)*8)
	}
	b := (*tmp)[:len(xs)*8]
	for i, x := range xs {
		binary.LittleEndian.PutUint64(b[i*8:], uint64(x))
	}
	return b
}

// alignedBytes returns n bytes (a multiple of 8) backed by int64s, so that
// they can be viewed as int64s.
func alignedBytes(n int) []byte {
	xs := make([]int64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&xs[0])), len(xs)*8)
}

// apply copies (reduce false) or reduces with op the little-endian int64s
// of p, which is 8-byte aligned, into dst.
func apply(dst []int64, p []byte, reduce bool, op Op) {
	if len(dst) == 0 {
		return
	}
	if !littleEndian {
		for i := range dst {
			v := int64(binary.LittleEndian.Uint64(p[i*8:]))
			switch {
			case !reduce:
				dst[i] = v
			case op == Max:
				dst[i] = max(dst[i], v)
			default:
				dst[i] += v
			}
		}
		return
	}
	src := unsafe.Slice((*int64)(unsafe.Pointer(&p[0])), len(dst))
	switch {
	case !reduce:
		copy(dst, src)
	case op == Max:
		for i, v := range src {
			dst[i] = max(dst[i], v)
		}
	default: // Sum (wrapping), and the barrier's
		for i, v := range src {
			dst[i] += v
		}
	}
}
