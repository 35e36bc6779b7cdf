package trainer

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/trainer/optim"
	"github.com/trainctl/trainctl/trainer/unet"
)

func sampleCheckpoint() *Checkpoint {
	val := &Metrics{Loss: 0.5, PixelAccuracy: 0.9, MeanIoU: 0.7, IoU: []float64{0.6, 0.8}, Present: []bool{true, true}, Pixels: 100, Examples: 2}
	return &Checkpoint{
		Created:        time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		Model:          unet.Config{InChannels: 3, Classes: 2, Height: 16, Width: 16, Widths: []int{2, 4}, Bottleneck: 8},
		Input:          InputSpec{Normalize: InputNormalizeUnit},
		Hyper:          Hyperparams{Optimizer: optim.DefaultConfig(), Batch: 4, Epochs: 3, Seed: 7, Flip: true},
		Dataset:        "shapes",
		DatasetVersion: strings.Repeat("ab", 32),
		Classes:        []string{"background", "shape"},
		Step:           42,
		Position:       dataset.Position{Epoch: 1, Offset: 8},
		RNG:            []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20},
		Val:            val,
		Params:         []float32{1, -2.5, 3e-8, 0, float32(math.Copysign(0, -1))},
		Optimizer:      []byte("optimizer state bytes"),
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
			binary.LittleEndian.PutUint64(d[pcount:], 6)
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

func FuzzDecodeCheckpoint(f *testing.F) {
	path := filepath.Join(f.TempDir(), "c.ckpt")
	if err := WriteCheckpoint(path, sampleCheckpoint()); err != nil {
		f.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	f.Add(data)
	f.Add(data[:40])
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCheckpoint(b)
		if err == nil && c == nil {
			t.Fatal("nil checkpoint without error")
		}
		if err != nil && !errors.Is(err, ErrCorruptCheckpoint) && !errors.Is(err, ErrCheckpointVersion) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}
