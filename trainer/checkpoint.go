package trainer

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/internal/durable"
	"github.com/trainctl/trainctl/trainer/optim"
	"github.com/trainctl/trainctl/trainer/unet"
)

// Checkpoint file layout (all integers little-endian):
//
//	offset  size  field
//	0       8     magic "TRNCKPT\x00"
//	8       4     format version (uint32), CheckpointVersion
//	12      4     reserved, zero
//	16      8     header length H (uint64), at most maxHeaderBytes
//	24      H     header: JSON of Checkpoint (everything but the two buffers)
//	.       8     parameter count P (uint64)
//	.       4P    parameters, float32 bit patterns
//	.       8     optimizer state length S (uint64)
//	.       S     optimizer state (optim.Optimizer.MarshalBinary)
//	.       32    SHA-256 of every byte before it
//
// A reader (VerifyCheckpoint, which DecodeCheckpoint and ReadCheckpoint
// use) checks, in order: the file is no larger than 1 GiB and long enough
// for the fixed parts, the magic, the version (a newer one is refused with
// ErrCheckpointVersion, whatever its layout), every length against the
// bytes that remain, that the file ends right after the digest, the
// digest, the header JSON, and finally that the parts fit together (see
// VerifyCheckpoint). WriteCheckpoint refuses to write a checkpoint whose
// parts do not, so every file it writes verifies.
const (
	checkpointMagic = "TRNCKPT\x00"
	// CheckpointVersion is the format version this build writes and reads.
	CheckpointVersion = 1

	ckptPrefix     = 8 + 4 + 4 + 8 // magic, version, reserved, header length
	ckptDigest     = sha256.Size
	maxHeaderBytes = 1 << 20
	// maxCheckpointBytes bounds the file size a reader will load (1 GiB:
	// UNet-S with Adam is 23 MiB).
	maxCheckpointBytes = 1 << 30
)

// ErrCorruptCheckpoint is returned (wrapped, with the path and what did not
// match) when a file is not a checkpoint, is truncated or has been altered.
var ErrCorruptCheckpoint = errors.New("corrupt checkpoint")

// ErrCheckpointVersion is returned (wrapped) for a checkpoint written in a
// format version this build does not read.
var ErrCheckpointVersion = errors.New("unsupported checkpoint version")

// Hyperparams are the training settings a checkpoint records, so a resumed
// run continues with the same ones and eval/predict know the input scaling.
type Hyperparams struct {
	Optimizer optim.Config `json:"optimizer"`
	Batch     int          `json:"batch"`
	Epochs    int          `json:"epochs"`
	Seed      uint64       `json:"seed"`
	// Flip is whether training applied random horizontal flips.
	Flip bool `json:"flip,omitempty"`
}

// Checkpoint is everything needed to resume training exactly or to run the
// model: its configuration, weights and optimizer state, the dataset version
// and position in its shuffled order, and the augmentation RNG state.
type Checkpoint struct {
	// Format is the file format version it was read from (set by
	// ReadCheckpoint; WriteCheckpoint always writes CheckpointVersion).
	Format int `json:"-"`
	// Created is when the checkpoint was taken (UTC).
	Created time.Time `json:"created"`
	// Model is the network configuration; Params is laid out as its
	// unet.Model.Params.
	Model unet.Config `json:"model"`
	// Input describes how images were turned into model input.
	Input InputSpec `json:"input"`
	// Hyper are the training hyperparameters.
	Hyper Hyperparams `json:"hyper"`
	// Dataset is the dataset name (may be empty) and DatasetVersion the
	// content id of the version trained on.
	Dataset        string `json:"dataset,omitempty"`
	DatasetVersion string `json:"dataset_version,omitempty"`
	// Classes are the dataset's class names, index = class id.
	Classes []string `json:"classes"`
	// Step is the number of optimizer steps taken.
	Step int64 `json:"step"`
	// Position is where the train-split reader stands: the next example
	// to read after Step steps.
	Position dataset.Position `json:"position"`
	// RNG is the augmentation generator's state (math/rand/v2.PCG
	// MarshalBinary).
	RNG []byte `json:"rng"`
	// Val are the most recent validation metrics, if any.
	Val *Metrics `json:"val,omitempty"`
	// BestMeanIoU is the best val mean IoU of the run so far (what
	// BestCheckpoint holds).
	BestMeanIoU float64 `json:"best_mean_iou,omitempty"`
	// Params are the model weights.
	Params []float32 `json:"-"`
	// Optimizer is the optimizer state (optim.Optimizer.MarshalBinary).
	Optimizer []byte `json:"-"`
	// GradScales are the fixed-point scales of the exact gradient, one per
	// parameter tensor (docs/architecture.md, "Data-parallel training");
	// empty in checkpoints of inexact runs and of earlier versions, whose
	// resume calibrates them again.
	GradScales []int `json:"grad_scales,omitempty"`
}

// WriteCheckpoint writes c to path atomically: into a temporary file in the
// same directory, fsynced, renamed over path, then the directory fsynced. A
// crash leaves either the old file or the new one, never a mix. A
// checkpoint whose parts do not fit together (the checks of
// VerifyCheckpoint) is refused, so every file written verifies.
func WriteCheckpoint(path string, c *Checkpoint) (err error) {
	stateHead := c.Optimizer[:min(len(c.Optimizer), optim.StateHeaderSize)]
	if err := c.check(int64(len(c.Params)), stateHead, int64(len(c.Optimizer))); err != nil {
		return fmt.Errorf("checkpoint %s: refusing to write an inconsistent checkpoint: %w", path, err)
	}
	hdr, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("checkpoint %s: encode header: %w", path, err)
	}
	if len(hdr) > maxHeaderBytes {
		return fmt.Errorf("checkpoint %s: header is %d bytes, the limit is %d", path, len(hdr), maxHeaderBytes)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	if err := encodeCheckpoint(bw, hdr, c); err != nil {
		return fmt.Errorf("checkpoint %s: write: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("checkpoint %s: write: %w", path, err)
	}
	if _, err := f.Write(h.Sum(nil)); err != nil {
		return fmt.Errorf("checkpoint %s: write: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("checkpoint %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("checkpoint %s: close: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if err := durable.SyncDir(dir); err != nil {
		return fmt.Errorf("checkpoint %s: sync directory: %w", path, err)
	}
	return nil
}

// encodeCheckpoint writes everything but the digest.
func encodeCheckpoint(w *bufio.Writer, hdr []byte, c *Checkpoint) error {
	var b [8]byte
	w.WriteString(checkpointMagic)
	binary.LittleEndian.PutUint32(b[:4], CheckpointVersion)
	w.Write(b[:4])
	w.Write([]byte{0, 0, 0, 0})
	binary.LittleEndian.PutUint64(b[:], uint64(len(hdr)))
	w.Write(b[:])
	w.Write(hdr)
	binary.LittleEndian.PutUint64(b[:], uint64(len(c.Params)))
	w.Write(b[:])
	for _, v := range c.Params {
		binary.LittleEndian.PutUint32(b[:4], math.Float32bits(v))
		w.Write(b[:4])
	}
	binary.LittleEndian.PutUint64(b[:], uint64(len(c.Optimizer)))
	w.Write(b[:])
	_, err := w.Write(c.Optimizer)
	return err // bufio.Writer errors are sticky
}

// ReadCheckpoint reads and verifies the checkpoint at path. A file that is
// not a checkpoint, is truncated or altered gives an error wrapping
// ErrCorruptCheckpoint; one in a newer format, ErrCheckpointVersion. Both
// name the path and what mismatched. It never panics on bad input and
// allocates no more than the file's size.
func ReadCheckpoint(path string) (*Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("checkpoint %s: %w: not a regular file", path, ErrCorruptCheckpoint)
	}
	if st.Size() > maxCheckpointBytes {
		return nil, fmt.Errorf("checkpoint %s: %w: %d bytes, larger than the %d-byte limit", path, ErrCorruptCheckpoint, st.Size(), maxCheckpointBytes)
	}
	data := make([]byte, st.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("checkpoint %s: read: %w", path, err)
	}
	c, err := DecodeCheckpoint(data)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return c, nil
}

// DecodeCheckpoint parses and verifies a checkpoint held in memory, as
// ReadCheckpoint does for a file, with VerifyCheckpoint's checks. The
// returned Checkpoint does not alias data.
func DecodeCheckpoint(data []byte) (*Checkpoint, error) {
	l, err := verifyCheckpoint(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, err
	}
	c := l.hdr
	pbytes := data[l.params : l.params+4*l.nparams]
	c.Params = make([]float32, l.nparams)
	for i := range c.Params {
		c.Params[i] = math.Float32frombits(binary.LittleEndian.Uint32(pbytes[4*i:]))
	}
	c.Optimizer = bytes.Clone(data[l.state : l.state+l.stateLen])
	if c.Optimizer == nil {
		c.Optimizer = []byte{}
	}
	return c, nil
}

// CheckpointInfo is what VerifyCheckpoint reports about a checkpoint: its
// header, without the weights and optimizer state it checked.
type CheckpointInfo struct {
	// Format is the file format version (CheckpointVersion).
	Format int
	// Size is the file's size in bytes.
	Size int64
	// Created is when the checkpoint was taken.
	Created time.Time
	// Model is the network configuration and Params its parameter count,
	// which the file holds.
	Model  unet.Config
	Params int64
	// Input is how images were turned into model input.
	Input InputSpec
	// Hyper are the training hyperparameters.
	Hyper Hyperparams
	// Dataset and DatasetVersion name what was trained on (may be empty).
	Dataset        string
	DatasetVersion string
	// Classes are the class names, index = class id.
	Classes []string
	// Step is the number of optimizer steps taken, Epoch the 0-based epoch
	// of the last of them, and Position where the train-split reader
	// stands.
	Step     int64
	Epoch    int
	Position dataset.Position
	// Val are the most recent validation metrics, if any, and BestMeanIoU
	// the best val mean IoU of the run so far.
	Val         *Metrics
	BestMeanIoU float64
	// Resumable is whether the file carries optimizer state, so training
	// can resume from it; a checkpoint without one can only be served.
	Resumable bool
}

// lastEpoch is the 0-based epoch of the last step taken when the train
// reader stands at p: right after an epoch end, p is already at the start
// of the next one.
func lastEpoch(p dataset.Position) int {
	if p.Offset == 0 && p.Epoch > 0 {
		return p.Epoch - 1
	}
	return p.Epoch
}

// VerifyCheckpoint checks the checkpoint of size bytes that r holds and
// returns what its header says. It checks the file format completely:
// the size (at most 1 GiB), the magic, the format version, every length
// against the bytes that remain (before reading or allocating anything by
// it), that the file ends right after the SHA-256 digest, the digest over
// everything before it, and the header JSON; then that the parts fit
// together: the model configuration is valid and the file holds exactly
// its parameter count, the optimizer state is empty (a checkpoint to
// serve) or is one the recorded optimizer restores for that many
// parameters, the RNG state is empty or restorable, the input scaling is
// known, and the step and reader position are not negative.
//
// It reads r in fixed-size pieces and holds at most the header (1 MiB)
// and a small buffer, whatever the input claims, so it can check an
// uploaded file before anything trusts it. Errors wrap
// ErrCorruptCheckpoint, ErrCheckpointVersion for a format version this
// build does not read, or the error of r.
func VerifyCheckpoint(r io.ReaderAt, size int64) (CheckpointInfo, error) {
	l, err := verifyCheckpoint(r, size)
	if err != nil {
		return CheckpointInfo{}, err
	}
	c := l.hdr
	return CheckpointInfo{
		Format:         c.Format,
		Size:           size,
		Created:        c.Created,
		Model:          c.Model,
		Params:         l.nparams,
		Input:          c.Input,
		Hyper:          c.Hyper,
		Dataset:        c.Dataset,
		DatasetVersion: c.DatasetVersion,
		Classes:        c.Classes,
		Step:           c.Step,
		Epoch:          lastEpoch(c.Position),
		Position:       c.Position,
		Val:            c.Val,
		BestMeanIoU:    c.BestMeanIoU,
		Resumable:      l.stateLen > 0,
	}, nil
}

// checkpointLayout is a verified checkpoint: its decoded header and where
// its parameters and optimizer state lie in the file.
type checkpointLayout struct {
	hdr      *Checkpoint // Params and Optimizer unset
	params   int64       // offset of the parameters
	nparams  int64       // parameter count
	state    int64       // offset of the optimizer state
	stateLen int64       // its length in bytes
}

// hashBufSize is the buffer verifyCheckpoint hashes the file through.
const hashBufSize = 64 << 10

// readFull reads len(p) bytes at off; a reader that ends early means the
// file is shorter than the size it was given.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: truncated: read %d of %d bytes at offset %d", ErrCorruptCheckpoint, n, len(p), off)
	}
	return fmt.Errorf("read at offset %d: %w", off, err)
}

// verifyCheckpoint is VerifyCheckpoint, returning the layout.
func verifyCheckpoint(r io.ReaderAt, size int64) (*checkpointLayout, error) {
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrCorruptCheckpoint, fmt.Sprintf(format, args...))
	}
	if size < 0 {
		return nil, corrupt("negative size %d", size)
	}
	if size > maxCheckpointBytes {
		return nil, corrupt("%d bytes, larger than the %d-byte limit", size, maxCheckpointBytes)
	}
	n := size // every offset below is checked against n before use, so none overflows
	var prefix [ckptPrefix]byte
	magic := prefix[:len(checkpointMagic)]
	if err := readFull(r, prefix[:min(n, ckptPrefix)], 0); err != nil {
		return nil, err
	}
	if n < int64(len(checkpointMagic)) {
		if bytes.HasPrefix([]byte(checkpointMagic), prefix[:n]) {
			return nil, corrupt("truncated: %d bytes, shorter than the magic", n)
		}
		return nil, corrupt("not a trainctl checkpoint (bad magic)")
	}
	if string(magic) != checkpointMagic {
		return nil, corrupt("not a trainctl checkpoint (bad magic %q)", magic)
	}
	if n < ckptPrefix {
		return nil, corrupt("truncated: %d bytes, shorter than the %d-byte prefix", n, ckptPrefix)
	}
	ver := binary.LittleEndian.Uint32(prefix[8:])
	if ver != CheckpointVersion {
		if ver > CheckpointVersion {
			return nil, fmt.Errorf("%w: format version %d is newer than this build reads (%d)", ErrCheckpointVersion, ver, CheckpointVersion)
		}
		return nil, fmt.Errorf("%w: format version %d (this build reads %d)", ErrCheckpointVersion, ver, CheckpointVersion)
	}
	if v := binary.LittleEndian.Uint32(prefix[12:]); v != 0 {
		return nil, corrupt("reserved field is %#x, want 0", v)
	}
	off := int64(ckptPrefix)
	// need checks that k more bytes, and the digest after them, fit
	// after off; k comes from the file, so it is compared before any sum.
	need := func(k uint64, what string) error {
		if k > uint64(n-off) || uint64(n-off)-k < ckptDigest {
			return corrupt("truncated: %s needs %d bytes at offset %d, the file has %d", what, k, off, n)
		}
		return nil
	}
	var word [8]byte
	readWord := func(what string) (uint64, error) {
		if err := need(8, what); err != nil {
			return 0, err
		}
		if err := readFull(r, word[:], off); err != nil {
			return 0, err
		}
		off += 8
		return binary.LittleEndian.Uint64(word[:]), nil
	}

	hlen := binary.LittleEndian.Uint64(prefix[16:])
	if hlen > maxHeaderBytes {
		return nil, corrupt("header length %d exceeds the %d-byte limit", hlen, maxHeaderBytes)
	}
	if err := need(hlen, "header"); err != nil {
		return nil, err
	}
	hdr := make([]byte, hlen) // at most maxHeaderBytes
	if err := readFull(r, hdr, off); err != nil {
		return nil, err
	}
	off += int64(hlen)

	np, err := readWord("parameter count")
	if err != nil {
		return nil, err
	}
	if np > uint64(n)/4 {
		return nil, corrupt("parameter count %d is larger than the file (%d bytes)", np, n)
	}
	if err := need(4*np, "parameters"); err != nil {
		return nil, err
	}
	l := &checkpointLayout{params: off, nparams: int64(np)}
	off += 4 * int64(np)

	slen, err := readWord("optimizer state length")
	if err != nil {
		return nil, err
	}
	if err := need(slen, "optimizer state"); err != nil {
		return nil, err
	}
	l.state, l.stateLen = off, int64(slen)
	off += int64(slen)
	if rest := n - off; rest != ckptDigest {
		return nil, corrupt("%d trailing bytes after the optimizer state, want exactly the %d-byte digest", rest-ckptDigest, ckptDigest)
	}

	h := sha256.New()
	buf := make([]byte, min(off, hashBufSize))
	for pos := int64(0); pos < off; {
		p := buf[:min(off-pos, int64(len(buf)))]
		if err := readFull(r, p, pos); err != nil {
			return nil, err
		}
		h.Write(p)
		pos += int64(len(p))
	}
	var stored [ckptDigest]byte
	if err := readFull(r, stored[:], off); err != nil {
		return nil, err
	}
	if sum := h.Sum(nil); !bytes.Equal(sum, stored[:]) {
		return nil, corrupt("SHA-256 mismatch: stored %x, content hashes to %x", stored, sum)
	}

	c := new(Checkpoint)
	if err := json.Unmarshal(hdr, c); err != nil {
		return nil, corrupt("header: %v", err)
	}
	c.Format = int(ver)
	var stateHead [optim.StateHeaderSize]byte
	sh := stateHead[:min(l.stateLen, optim.StateHeaderSize)]
	if err := readFull(r, sh, l.state); err != nil {
		return nil, err
	}
	if err := c.check(l.nparams, sh, l.stateLen); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptCheckpoint, err)
	}
	l.hdr = c
	return l, nil
}

// check reports why a checkpoint with header c, nparams parameters and an
// optimizer state of stateLen bytes starting with stateHead (its first
// optim.StateHeaderSize bytes) cannot be served or resumed from: the
// checks VerifyCheckpoint makes after the file's structure and digest.
// It reads nothing else and allocates nothing by the sizes it is given.
func (c *Checkpoint) check(nparams int64, stateHead []byte, stateLen int64) error {
	if err := c.Model.Validate(); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	// Validate bounds every dimension by 2^14 and the depth by 10, so the
	// count is below 2^40 and NumParams cannot overflow an int64.
	if want := int64(unet.NumParams(c.Model)); nparams != want {
		return fmt.Errorf("%d parameters, the model configuration needs %d", nparams, want)
	}
	if stateLen > 0 {
		if err := optim.CheckState(c.Hyper.Optimizer, int(nparams), stateHead, stateLen); err != nil {
			return fmt.Errorf("optimizer state: %w", err)
		}
	}
	if len(c.RNG) > 0 {
		var pcg rand.PCG
		if err := pcg.UnmarshalBinary(c.RNG); err != nil {
			return fmt.Errorf("RNG state: %w", err)
		}
	}
	if c.Input.Normalize != "" && c.Input.Normalize != InputNormalizeUnit {
		return fmt.Errorf("input normalisation %q is not %q", c.Input.Normalize, InputNormalizeUnit)
	}
	if c.Step < 0 || c.Position.Epoch < 0 || c.Position.Offset < 0 {
		return fmt.Errorf("negative step %d or reader position %s", c.Step, c.Position)
	}
	return nil
}
