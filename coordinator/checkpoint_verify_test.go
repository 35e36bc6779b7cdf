package coordinator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/trainer"
	"github.com/trainctl/trainctl/trainer/unet"
)

// testCheckpoint returns the bytes of a tiny checkpoint file that
// verifies (a 2×2 model, no optimizer state), distinct for each tag.
func testCheckpoint(tag string) []byte {
	model := unet.Config{InChannels: 1, Classes: 2, Height: 2, Width: 2, Widths: []int{1}, Bottleneck: 1}
	c := &trainer.Checkpoint{
		Created:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Model:     model,
		Input:     trainer.InputSpec{Normalize: trainer.InputNormalizeUnit},
		Dataset:   tag, // makes the content, so the digest, differ by tag
		Classes:   []string{"background", "shape"},
		Params:    make([]float32, unet.NumParams(model)),
		Optimizer: []byte{},
	}
	dir, err := os.MkdirTemp("", "coordinator-checkpoint-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "ckpt")
	if err := trainer.WriteCheckpoint(path, c); err != nil {
		panic(fmt.Sprintf("write test checkpoint: %v", err))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return b
}

// TestCheckpointRegisterVerifies checks that a checkpoint or model is
// registered only if its blob verifies as a checkpoint: a blob that is
// not one, and one whose bytes were altered after its digest was taken,
// are refused with 400 naming the problem, and nothing is registered.
func TestCheckpointRegisterVerifies(t *testing.T) {
	c := newCluster(t, 1, nil)
	s := c.nodes[0].srv
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	j := submit(t, cl, testSpec("verified"))

	good := testCheckpoint("good")
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 1 // its own trailing digest no longer matches
	truncated := good[:len(good)-1]
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"not a checkpoint", []byte("checkpoint of nothing")},
		{"a flipped bit", flipped},
		{"truncated", truncated},
		{"empty", []byte{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := uploadBlob(t, s.HTTPAddr(), tt.data)
			_, err := cl.RegisterCheckpoint(ctx, api.RegisterCheckpointBody{Digest: d, JobID: j.ID, Step: 1})
			var apiErr *api.APIError
			if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Code != api.CodeInvalid {
				t.Fatalf("register: %v, want 400 invalid", err)
			}
			t.Logf("refused: %s", apiErr.Message)
			if _, _, err := cl.RegisterModel(ctx, api.RegisterModelBody{Name: "m", Checkpoint: d}); err == nil {
				t.Fatalf("registered a model from an unverified blob")
			}
		})
	}
	if cps := s.State().Checkpoints(""); len(cps) != 0 {
		t.Fatalf("%d checkpoints registered from bad blobs", len(cps))
	}

	d := uploadBlob(t, s.HTTPAddr(), good)
	if _, err := cl.RegisterCheckpoint(ctx, api.RegisterCheckpointBody{Digest: d, JobID: j.ID, Step: 1}); err != nil {
		t.Fatalf("register a valid checkpoint: %v", err)
	}
	if _, _, err := cl.RegisterModel(ctx, api.RegisterModelBody{Name: "m", Checkpoint: d}); err != nil {
		t.Fatalf("register a model from a valid checkpoint: %v", err)
	}
}
