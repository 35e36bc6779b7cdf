package trainer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/trainer/optim"
	"github.com/trainctl/trainctl/trainer/unet"
)

// sampleCheckpoint is a small checkpoint whose parts fit together (as
// WriteCheckpoint requires): a one-level UNet with its exact parameter
// count, Adam state for it and a real RNG state. Its first parameters are
// bit patterns a round trip must keep.
func sampleCheckpoint() *Checkpoint {
	val := &Metrics{Loss: 0.5, PixelAccuracy: 0.9, MeanIoU: 0.7, IoU: []float64{0.6, 0.8}, Present: []bool{true, true}, Pixels: 100, Examples: 2}
	model := unet.Config{InChannels: 1, Classes: 2, Height: 2, Width: 2, Widths: []int{1}, Bottleneck: 1}
	params := make([]float32, unet.NumParams(model))
	for i := range params {
		params[i] = float32(i) / 16
	}
	copy(params, []float32{1, -2.5, 3e-8, 0, float32(math.Copysign(0, -1)), float32(math.Inf(1))})
	opt, err := optim.New(optim.DefaultConfig(), len(params))
	if err != nil {
		panic(err)
	}
	state, _ := opt.MarshalBinary()
	rng, _ := rand.NewPCG(7, 8).MarshalBinary()
	return &Checkpoint{
		Created:        time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		Model:          model,
		Input:          InputSpec{Normalize: InputNormalizeUnit},
		Hyper:          Hyperparams{Optimizer: opt.Config(), Batch: 4, Epochs: 3, Seed: 7, Flip: true},
		Dataset:        "shapes",
		DatasetVersion: strings.Repeat("ab", 32),
		Classes:        []string{"background", "shape"},
		Step:           42,
		Position:       dataset.Position{Epoch: 1, Offset: 8},
		RNG:            rng,
		Val:            val,
		BestMeanIoU:    0.7,
		Params:         params,
		Optimizer:      state,
	}
}

func writeSample(t *testing.T) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.ckpt")
	if err := WriteCheckpoint(path, sampleCheckpoint()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, data
}

func TestCheckpointRoundTrip(t *testing.T) {
	path, _ := writeSample(t)
	got, err := ReadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	want := sampleCheckpoint()
	want.Format = CheckpointVersion
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	// Bit patterns survive (negative zero included).
	for i := range want.Params {
		if a, b := got.Params[i], want.Params[i]; math.Float32bits(a) != math.Float32bits(b) {
			t.Fatalf("param %d: %v, want %v", i, a, b)
		}
	}
	// Overwriting is atomic and leaves no temporary files behind.
	c2 := sampleCheckpoint()
	c2.Step = 43
	if err := WriteCheckpoint(path, c2); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries after rewrite, want 1", len(ents))
	}
	if got, err := ReadCheckpoint(path); err != nil || got.Step != 43 {
		t.Fatalf("rewrite: step %v, err %v", got, err)
	}
}

func TestCheckpointTruncated(t *testing.T) {
	_, data := writeSample(t)
	for n := 0; n < len(data); n++ {
		_, err := DecodeCheckpoint(data[:n])
		if !errors.Is(err, ErrCorruptCheckpoint) {
			t.Fatalf("truncated to %d of %d bytes: err = %v, want ErrCorruptCheckpoint", n, len(data), err)
		}
	}
	// Trailing garbage is refused too.
	if _, err := DecodeCheckpoint(append(bytes.Clone(data), 0)); !errors.Is(err, ErrCorruptCheckpoint) {
		t.Fatalf("extra byte: err = %v", err)
	}
}

func TestCheckpointEveryByteFlipped(t *testing.T) {
	_, data := writeSample(t)
	for i := range data {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			d := bytes.Clone(data)
			d[i] ^= mask
			_, err := DecodeCheckpoint(d)
			if err == nil {
				t.Fatalf("byte %d ^ %#x: accepted", i, mask)
			}
			if !errors.Is(err, ErrCorruptCheckpoint) && !errors.Is(err, ErrCheckpointVersion) {
				t.Fatalf("byte %d ^ %#x: err = %v, want a checkpoint error", i, mask, err)
			}
			// The version field only yields version errors; everything else is corruption.
			if (i >= 8 && i < 12) != errors.Is(err, ErrCheckpointVersion) {
				t.Fatalf("byte %d ^ %#x: err = %v", i, mask, err)
			}
		}
	}
}

// reseal recomputes the digest, so a test can reach the checks behind it.
func reseal(d []byte) []byte {
	body := d[:len(d)-sha256.Size]
	sum := sha256.Sum256(body)
	return append(bytes.Clone(body), sum[:]...)
}

func TestCheckpointRejects(t *testing.T) {
	path, data := writeSample(t)
	hlen := binary.LittleEndian.Uint64(data[16:])
	pcount := 24 + int(hlen)
	tests := []struct {
		name    string
		data    []byte
		wantErr error
		msg     string
	}{
		{"empty", nil, ErrCorruptCheckpoint, "truncated"},
		{"wrong magic", append([]byte("PK\x03\x04xxxx"), data[8:]...), ErrCorruptCheckpoint, "not a trainctl checkpoint"},
		{"future version", func() []byte {
			d := bytes.Clone(data)
			binary.LittleEndian.PutUint32(d[8:], CheckpointVersion+1)
			return reseal(d)
		}(), ErrCheckpointVersion, "newer"},
		{"version zero", func() []byte {
			d := bytes.Clone(data)
			binary.LittleEndian.PutUint32(d[8:], 0)
			return reseal(d)
		}(), ErrCheckpointVersion, "version 0"},
		{"absurd header length", func() []byte {
			d := bytes.Clone(data)
			binary.LittleEndian.PutUint64(d[16:], 1<<62)
			return reseal(d)
		}(), ErrCorruptCheckpoint, "header length"},
		{"header length past end", func() []byte {
			d := bytes.Clone(data)
			binary.LittleEndian.PutUint64(d[16:], uint64(len(d)))
			return reseal(d)
		}(), ErrCorruptCheckpoint, "truncated"},
		{"absurd parameter count", func() []byte {
			d := bytes.Clone(data)
			binary.LittleEndian.PutUint64(d[pcount:], 1<<63)
			return reseal(d)
		}(), ErrCorruptCheckpoint, "parameter count"},
		{"parameter count off by one", func() []byte {
			d := bytes.Clone(data)
			binary.LittleEndian.PutUint64(d[pcount:], binary.LittleEndian.Uint64(d[pcount:])+1)
			return reseal(d)
		}(), ErrCorruptCheckpoint, "optimizer state"},
		{"bad header JSON, valid digest", func() []byte {
			d := bytes.Clone(data)
			d[24] = '['
			return reseal(d)
		}(), ErrCorruptCheckpoint, "header"},
		{"digest", func() []byte {
			d := bytes.Clone(data)
			d[len(d)-1] ^= 1
			return d
		}(), ErrCorruptCheckpoint, "SHA-256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeCheckpoint(tt.data)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tt.wantErr, tt.msg)
			}
		})
	}
	// ReadCheckpoint names the file.
	if err := os.WriteFile(path, data[:100], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCheckpoint(path); !errors.Is(err, ErrCorruptCheckpoint) || !strings.Contains(err.Error(), path) {
		t.Fatalf("ReadCheckpoint err = %v, want ErrCorruptCheckpoint naming %s", err, path)
	}
	if _, err := ReadCheckpoint(filepath.Join(t.TempDir(), "missing.ckpt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err = %v, want ErrNotExist", err)
	}
	if _, err := ReadCheckpoint(t.TempDir()); !errors.Is(err, ErrCorruptCheckpoint) {
		t.Fatalf("directory: err = %v", err)
	}
}

// encodeRaw encodes c as WriteCheckpoint would, without its checks, so a
// test can build files whose parts do not fit together.
func encodeRaw(t testing.TB, c *Checkpoint) []byte {
	t.Helper()
	hdr, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := encodeCheckpoint(w, hdr, c); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return append(buf.Bytes(), sum[:]...)
}

// modelOnly is sampleCheckpoint as a checkpoint to serve: no optimizer
// state, no RNG, no hyperparameters.
func modelOnly() *Checkpoint {
	c := sampleCheckpoint()
	c.Hyper, c.RNG, c.Optimizer = Hyperparams{}, nil, []byte{}
	return c
}

// withOptimizer is sampleCheckpoint with the state of an optimizer cfg.
func withOptimizer(cfg optim.Config) *Checkpoint {
	c := sampleCheckpoint()
	o, err := optim.New(cfg, len(c.Params))
	if err != nil {
		panic(err)
	}
	c.Hyper.Optimizer = o.Config()
	c.Optimizer, _ = o.MarshalBinary()
	return c
}

// TestVerifyCheckpoint: the verifier accepts checkpoints whose parts fit
// together, reporting their header, and refuses (as corrupt) those whose
// digest is right but whose parts do not; WriteCheckpoint refuses to write
// the latter, and DecodeCheckpoint agrees with the verifier.
func TestVerifyCheckpoint(t *testing.T) {
	edit := func(f func(c *Checkpoint)) *Checkpoint {
		c := sampleCheckpoint()
		f(c)
		return c
	}
	otherModel := unet.Config{InChannels: 1, Classes: 2, Height: 2, Width: 2, Widths: []int{2}, Bottleneck: 1}
	tests := []struct {
		name          string
		c             *Checkpoint
		wantMsg       string // "": accepted
		wantResumable bool
	}{
		{"adam", sampleCheckpoint(), "", true},
		{"sgd", withOptimizer(optim.Config{Kind: optim.SGD, LR: 0.1}), "", true},
		{"sgd with momentum", withOptimizer(optim.Config{Kind: optim.SGD, LR: 0.1, Momentum: 0.9}), "", true},
		{"model only", modelOnly(), "", false},
		{"epoch end", edit(func(c *Checkpoint) { c.Position = dataset.Position{Epoch: 2} }), "", true},
		{"too few parameters", edit(func(c *Checkpoint) { c.Params = c.Params[:len(c.Params)-1] }), "the model configuration needs", false},
		{"parameters of another model", edit(func(c *Checkpoint) { c.Model = otherModel }), "the model configuration needs", false},
		{"invalid model", edit(func(c *Checkpoint) { c.Model.Classes = 1 }), "model: unet: bad config", false},
		{"no model", edit(func(c *Checkpoint) { c.Model = unet.Config{} }), "model: unet: bad config", false},
		{"state of another optimizer", edit(func(c *Checkpoint) { c.Hyper.Optimizer = optim.Config{Kind: optim.SGD, LR: 0.1} }), "optimizer state: invalid optimizer state", false},
		{"state without an optimizer", edit(func(c *Checkpoint) { c.Hyper.Optimizer = optim.Config{} }), "optimizer state: invalid optimizer config", false},
		{"state for fewer parameters", edit(func(c *Checkpoint) {
			c.Optimizer = withOptimizer(optim.Config{Kind: optim.SGD, LR: 0.1, Momentum: 0.5}).Optimizer
			c.Hyper.Optimizer = optim.Config{Kind: optim.SGD, LR: 0.1, Momentum: 0.5}
			c.Optimizer = c.Optimizer[:len(c.Optimizer)-4]
		}), "optimizer state", false},
		{"garbage state", edit(func(c *Checkpoint) { c.Optimizer = []byte("optimizer state bytes") }), "optimizer state: invalid optimizer state", false},
		{"bad RNG", edit(func(c *Checkpoint) { c.RNG = []byte{1, 2, 3} }), "RNG state", false},
		{"unknown input scaling", edit(func(c *Checkpoint) { c.Input.Normalize = "imagenet" }), "input normalisation", false},
		{"negative step", edit(func(c *Checkpoint) { c.Step = -1 }), "negative step", false},
		{"negative position", edit(func(c *Checkpoint) { c.Position.Offset = -1 }), "negative step", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := encodeRaw(t, tt.c)
			info, err := VerifyCheckpoint(bytes.NewReader(data), int64(len(data)))
			_, derr := DecodeCheckpoint(data)
			if (err == nil) != (derr == nil) {
				t.Fatalf("VerifyCheckpoint: %v, but DecodeCheckpoint: %v", err, derr)
			}
			werr := WriteCheckpoint(filepath.Join(t.TempDir(), "c.ckpt"), tt.c)
			if tt.wantMsg != "" {
				if !errors.Is(err, ErrCorruptCheckpoint) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("VerifyCheckpoint: %v, want ErrCorruptCheckpoint mentioning %q", err, tt.wantMsg)
				}
				if werr == nil || !strings.Contains(werr.Error(), tt.wantMsg) {
					t.Fatalf("WriteCheckpoint: %v, want a refusal mentioning %q", werr, tt.wantMsg)
				}
				return
			}
			if err != nil || werr != nil {
				t.Fatalf("VerifyCheckpoint: %v; WriteCheckpoint: %v; want both to accept", err, werr)
			}
			c := tt.c
			want := CheckpointInfo{
				Format: CheckpointVersion, Size: int64(len(data)), Created: c.Created, Model: c.Model,
				Params: int64(len(c.Params)), Input: c.Input, Hyper: c.Hyper, Dataset: c.Dataset,
				DatasetVersion: c.DatasetVersion, Classes: c.Classes, Step: c.Step, Epoch: lastEpoch(c.Position),
				Position: c.Position, Val: c.Val, BestMeanIoU: c.BestMeanIoU, Resumable: tt.wantResumable,
			}
			if !reflect.DeepEqual(info, want) {
				t.Fatalf("info:\n got %+v\nwant %+v", info, want)
			}
		})
	}
	// The epoch is that of the last step: 1 mid-epoch, 1 right after its end.
	for _, tt := range []struct {
		pos  dataset.Position
		want int
	}{{dataset.Position{Epoch: 1, Offset: 8}, 1}, {dataset.Position{Epoch: 2}, 1}, {dataset.Position{}, 0}} {
		if got := lastEpoch(tt.pos); got != tt.want {
			t.Errorf("lastEpoch(%s) = %d, want %d", tt.pos, got, tt.want)
		}
	}
}

// failingReaderAt fails every read past its first n bytes.
type failingReaderAt struct {
	data []byte
	n    int64
}

var errDisk = errors.New("disk on fire")

func (r failingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > r.n {
		return 0, errDisk
	}
	return copy(p, r.data[off:]), nil
}

// TestVerifyCheckpointReader: a size past what the reader holds is a
// truncated file; a read error is passed on, not called corruption.
func TestVerifyCheckpointReader(t *testing.T) {
	_, data := writeSample(t)
	tests := []struct {
		name    string
		r       io.ReaderAt
		size    int64
		wantErr error
		msg     string
	}{
		{"size past the end", bytes.NewReader(data[:len(data)-10]), int64(len(data)), ErrCorruptCheckpoint, "truncated"},
		{"negative size", bytes.NewReader(data), -1, ErrCorruptCheckpoint, "negative size"},
		{"over the limit", bytes.NewReader(data), maxCheckpointBytes + 1, ErrCorruptCheckpoint, "limit"},
		{"read error", failingReaderAt{data, 1000}, int64(len(data)), errDisk, "disk on fire"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyCheckpoint(tt.r, tt.size)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tt.wantErr, tt.msg)
			}
			if tt.wantErr == errDisk && errors.Is(err, ErrCorruptCheckpoint) {
				t.Fatalf("a read error reported as corruption: %v", err)
			}
		})
	}
}

// TestVerifyCheckpointMemory: verifying a checkpoint of UNet-S with Adam
// state (23 MB) from a file allocates a small fixed amount, not the file.
func TestVerifyCheckpointMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 23 MB checkpoint")
	}
	c := sampleCheckpoint()
	c.Model = unet.DefaultConfig()
	c.Params = make([]float32, unet.NumParams(c.Model))
	opt, err := optim.New(c.Hyper.Optimizer, len(c.Params))
	if err != nil {
		t.Fatal(err)
	}
	c.Optimizer, _ = opt.MarshalBinary()
	path := filepath.Join(t.TempDir(), "unet-s.ckpt")
	if err := WriteCheckpoint(path, c); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	info, err := VerifyCheckpoint(f, st.Size())
	runtime.ReadMemStats(&after)
	if err != nil || info.Params != int64(len(c.Params)) || !info.Resumable {
		t.Fatalf("VerifyCheckpoint: %+v, %v", info, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("verifying a %d-byte checkpoint allocated %d bytes, want under 1 MiB", st.Size(), alloc)
	}
}

// fuzzSeeds are checkpoints the trainer's own writer produced: a real
// training run's latest and best checkpoints (a one-level UNet of width 1
// on 16x16 shapes, one epoch: about 2 kB each, small enough for the fuzzer
// to mutate and minimize quickly), and small ones of each kind of
// optimizer state and of a model only.
func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	v, man := shapesVersion(f, 8, 1)
	cfg := baseConfig(man)
	cfg.Model = unet.Config{InChannels: 3, Classes: 3, Height: 16, Width: 16, Widths: []int{1}, Bottleneck: 1}
	cfg.Epochs, cfg.Threads, cfg.CheckpointDir = 1, 1, f.TempDir()
	if _, err := Train(context.Background(), v, cfg); err != nil {
		f.Fatal(err)
	}
	var seeds [][]byte
	for _, name := range []string{LatestCheckpoint, BestCheckpoint} {
		b, err := os.ReadFile(filepath.Join(cfg.CheckpointDir, name))
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	for _, c := range []*Checkpoint{
		sampleCheckpoint(),
		modelOnly(),
		withOptimizer(optim.Config{Kind: optim.SGD, LR: 0.1}),
		withOptimizer(optim.Config{Kind: optim.SGD, LR: 0.1, Momentum: 0.9}),
	} {
		path := filepath.Join(f.TempDir(), "c.ckpt")
		if err := WriteCheckpoint(path, c); err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// FuzzCheckpointHeader feeds the checkpoint reader arbitrary files, seeded
// with what the writer produces and truncated and bit-flipped copies. The
// verifier must not panic, must accept every file the writer produced,
// must refuse with a checkpoint error, must agree with DecodeCheckpoint,
// and what it accepts must survive a write and a second verification.
func FuzzCheckpointHeader(f *testing.F) {
	seeds := fuzzSeeds(f)
	for _, b := range seeds {
		if _, err := VerifyCheckpoint(bytes.NewReader(b), int64(len(b))); err != nil {
			f.Fatalf("the writer's own checkpoint does not verify: %v", err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[:ckptPrefix+10])
		for _, at := range []int{9, 17, ckptPrefix + 3, len(b) / 2, len(b) - 1} {
			d := bytes.Clone(b)
			d[at] ^= 0x40
			f.Add(d)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := VerifyCheckpoint(bytes.NewReader(b), int64(len(b)))
		c, derr := DecodeCheckpoint(b)
		if (err == nil) != (derr == nil) {
			t.Fatalf("VerifyCheckpoint: %v, but DecodeCheckpoint: %v", err, derr)
		}
		if err != nil {
			if !errors.Is(err, ErrCorruptCheckpoint) && !errors.Is(err, ErrCheckpointVersion) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if info.Params != int64(len(c.Params)) || info.Step != c.Step || info.Model.Classes != c.Model.Classes || info.Resumable != (len(c.Optimizer) > 0) {
			t.Fatalf("info %+v does not describe the decoded checkpoint", info)
		}
		again := encodeRaw(t, c)
		if _, err := VerifyCheckpoint(bytes.NewReader(again), int64(len(again))); err != nil {
			t.Fatalf("a checkpoint the reader accepted, written again, does not verify: %v", err)
		}
	})
}
