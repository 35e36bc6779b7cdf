package trainer

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/trainctl/trainctl/internal/durable"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/trainctl/trainctl/dataset"
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
// A reader checks, in order: the file is long enough for the fixed parts,
// the magic, the version (a newer one is refused with ErrCheckpointVersion,
// whatever its layout), every length against the bytes that remain, that the
// file ends right after the digest, the digest, and finally the header JSON.
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
}

// WriteCheckpoint writes c to path atomically: into a temporary file in the
// same directory, fsynced, renamed over path, then the directory fsynced. A
// crash leaves either the old file or the new one, never a mix.
func WriteCheckpoint(path string, c *Checkpoint) (err error) {
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
// ReadCheckpoint does for a file. The returned Checkpoint does not alias
// data.
func DecodeCheckpoint(data []byte) (*Checkpoint, error) {
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrCorruptCheckpoint, fmt.Sprintf(format, args...))
	}
	n := uint64(len(data))
	if n < uint64(len(checkpointMagic)) {
		if bytes.HasPrefix([]byte(checkpointMagic), data) {
			return nil, corrupt("truncated: %d bytes, shorter than the magic", n)
		}
		return nil, corrupt("not a trainctl checkpoint (bad magic)")
	}
	if string(data[:len(checkpointMagic)]) != checkpointMagic {
		return nil, corrupt("not a trainctl checkpoint (bad magic %q)", data[:len(checkpointMagic)])
	}
	if n < ckptPrefix {
		return nil, corrupt("truncated: %d bytes, shorter than the %d-byte prefix", n, ckptPrefix)
	}
	ver := binary.LittleEndian.Uint32(data[8:])
	if ver != CheckpointVersion {
		if ver > CheckpointVersion {
			return nil, fmt.Errorf("%w: format version %d is newer than this build reads (%d)", ErrCheckpointVersion, ver, CheckpointVersion)
		}
		return nil, fmt.Errorf("%w: format version %d (this build reads %d)", ErrCheckpointVersion, ver, CheckpointVersion)
	}
	if r := binary.LittleEndian.Uint32(data[12:]); r != 0 {
		return nil, corrupt("reserved field is %#x, want 0", r)
	}
	off := uint64(ckptPrefix)
	// need reports whether k more bytes (plus the digest) fit after off.
	need := func(k uint64, what string) error {
		if k > n || off+k > n || n-off-k < ckptDigest {
			return corrupt("truncated: %s needs %d bytes at offset %d, the file has %d", what, k, off, n)
		}
		return nil
	}
	hlen := binary.LittleEndian.Uint64(data[16:])
	if hlen > maxHeaderBytes {
		return nil, corrupt("header length %d exceeds the %d-byte limit", hlen, maxHeaderBytes)
	}
	if err := need(hlen, "header"); err != nil {
		return nil, err
	}
	hdr := data[off : off+hlen]
	off += hlen
	if err := need(8, "parameter count"); err != nil {
		return nil, err
	}
	np := binary.LittleEndian.Uint64(data[off:])
	off += 8
	if np > n/4 {
		return nil, corrupt("parameter count %d is larger than the file (%d bytes)", np, n)
	}
	if err := need(4*np, "parameters"); err != nil {
		return nil, err
	}
	pbytes := data[off : off+4*np]
	off += 4 * np
	if err := need(8, "optimizer state length"); err != nil {
		return nil, err
	}
	slen := binary.LittleEndian.Uint64(data[off:])
	off += 8
	if err := need(slen, "optimizer state"); err != nil {
		return nil, err
	}
	state := data[off : off+slen]
	off += slen
	if rest := n - off; rest != ckptDigest {
		return nil, corrupt("%d trailing bytes after the optimizer state, want exactly the %d-byte digest", rest-ckptDigest, ckptDigest)
	}
	sum := sha256.Sum256(data[:off])
	if !bytes.Equal(sum[:], data[off:]) {
		return nil, corrupt("SHA-256 mismatch: stored %x, content hashes to %x", data[off:], sum)
	}
	c := new(Checkpoint)
	if err := json.Unmarshal(hdr, c); err != nil {
		return nil, corrupt("header: %v", err)
	}
	c.Format = int(ver)
	c.Params = make([]float32, np)
	for i := range c.Params {
		c.Params[i] = math.Float32frombits(binary.LittleEndian.Uint32(pbytes[4*i:]))
	}
	c.Optimizer = bytes.Clone(state)
	if c.Optimizer == nil {
		c.Optimizer = []byte{}
	}
	return c, nil
}
