package main

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/trainer"
	"github.com/trainctl/trainctl/trainer/gemm"
	"github.com/trainctl/trainctl/trainer/unet"
)

// writeTinyCheckpoint writes an untrained two-level UNet on 16x16 input.
func writeTinyCheckpoint(t *testing.T) string {
	t.Helper()
	cfg := unet.Config{InChannels: 3, Classes: 3, Height: 16, Width: 16, Widths: []int{4, 8}, Bottleneck: 8}
	m, err := unet.New(cfg, gemm.New(1), 1)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(1)
	params := slices.Clone(m.Params)
	m.Close()
	path := filepath.Join(t.TempDir(), "tiny.ckpt")
	err = trainer.WriteCheckpoint(path, &trainer.Checkpoint{
		Created: time.Now().UTC(), Model: cfg, Input: trainer.InputSpec{Normalize: trainer.InputNormalizeUnit},
		Classes: dataset.TrimapClasses(), Params: params, Optimizer: []byte{},
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

var serveURLRE = regexp.MustCompile(`at (http://\S+)/ \(predict`)

// TestServeCheckpoint serves a checkpoint file with `trainctl serve` and
// predicts through it; Ctrl-C stops it cleanly.
func TestServeCheckpoint(t *testing.T) {
	ckpt := writeTinyCheckpoint(t)
	var out, errOut syncBuffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &errOut
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- app.RunContext(ctx, []string{"trainctl", "--data-dir", t.TempDir(), "serve",
			"--checkpoint", ckpt, "--name", "pets", "--listen", "127.0.0.1:0", "--log-level", "warn"})
	}()
	var base string
	upWait(t, 20*time.Second, "serve to print its URL", func() error {
		select {
		case err := <-done:
			t.Fatalf("serve returned early: %v\n%s", err, errOut.String())
		default:
		}
		m := serveURLRE.FindStringSubmatch(out.String())
		if m == nil {
			return errors.New("no URL yet")
		}
		base = m[1]
		return nil
	})
	var img bytes.Buffer
	if err := png.Encode(&img, image.NewRGBA(image.Rect(0, 0, 40, 30))); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/models/pets:predict", &img)
	req.Header.Set("Accept", "image/png")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	mask, err := png.Decode(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || mask.Bounds().Dx() != 40 || mask.Bounds().Dy() != 30 {
		t.Fatalf("predict: %d, mask %v, %v", resp.StatusCode, mask, err)
	}
	if v := resp.Header.Get("X-Model-Version"); len(v) != 12 {
		t.Errorf("X-Model-Version %q, want the checkpoint's short digest", v)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20s of Ctrl-C")
	}
}

func TestServeFlags(t *testing.T) {
	ckpt := writeTinyCheckpoint(t)
	tests := []struct {
		args []string
		want string
	}{
		{nil, "nothing to serve"},
		{[]string{"--checkpoint", ckpt, "--sweep", "s"}, "not both"},
		{[]string{"--job", "j", "--sweep", "s"}, "only one of"},
		{[]string{"--checkpoint", filepath.Join(t.TempDir(), "missing.ckpt")}, "missing.ckpt"},
		{[]string{"--checkpoint", ckpt, "--max-batch", "0"}, "--max-batch 0"},
		{[]string{"--checkpoint", ckpt, "--queue", "0"}, "--queue 0"},
		{[]string{"--checkpoint", ckpt, "--listen", "nonsense"}, "--listen nonsense"},
		{[]string{"--model", "a/b"}, "give one with --name"},
		{[]string{"--sweep", "s", "--poll", "0s"}, "--poll 0s: must be positive"},
		{[]string{"--sweep", "s", "--poll", "-1s"}, "--poll -1s: must be positive"},
	}
	for _, tc := range tests {
		app := newApp()
		var out bytes.Buffer
		app.Writer, app.ErrWriter = &out, &out
		err := app.Run(append([]string{"trainctl", "serve"}, tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("serve %v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// TestServeFollowCannotStart: when following cannot work at all (its
// checkpoint cache cannot be created under --data-dir), serve stops with
// that error instead of serving "not ready" forever.
func TestServeFollowCannotStart(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	app := newApp()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	done := make(chan error, 1)
	go func() {
		done <- app.Run([]string{"trainctl", "--data-dir", notDir, "serve", "--sweep", "0123456789abcdef",
			"--coordinator", "127.0.0.1:1", "--listen", "127.0.0.1:0"})
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "serve: following sweep 0123456789abcdef: ") || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("serve with an unusable --data-dir: %v, want the follower's error", err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("serve kept running though it cannot follow:\n%s", out.String())
	}
}
