package main

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trainctl/trainctl/dataset"
)

// syncBuffer is a bytes.Buffer safe for a command writing while the test
// reads, with a signal on every write.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.written <- struct{}{}:
	default:
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServeCommand runs `trainctl dataset serve --listen 127.0.0.1:0` on
// dataDir until the test ends and returns the address it reports.
func startServeCommand(t *testing.T, dataDir string) string {
	t.Helper()
	out := &syncBuffer{written: make(chan struct{}, 1)}
	app := newApp()
	app.Writer, app.ErrWriter = out, out
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.RunContext(ctx, []string{"trainctl", "--data-dir", dataDir, "dataset", "serve", "--listen", "127.0.0.1:0"})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	addrRE := regexp.MustCompile(` on (127\.0\.0\.1:\d+) `)
	deadline := time.After(10 * time.Second)
	for {
		if m := addrRE.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		select {
		case <-out.written:
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, out.String())
		case <-deadline:
			t.Fatalf("serve printed no address:\n%s", out.String())
		}
	}
}

func TestDatasetServeStreamPull(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	man := genShapes(t, src, "shapes", 20, 16) // 16 train, 4 val
	addr := startServeCommand(t, src)

	// stream: shard 1 of 2, epoch 1, from offset 2, as a local reader.
	out, err := runApp(t, dst, "-o", "json", "dataset", "stream", "--from", addr, "--shard", "1/2", "--epoch", "1", "--seed", "3", "--offset", "2", "shapes@v1")
	if err != nil {
		t.Fatalf("stream: %v\n%s", err, out)
	}
	var got struct {
		Summary struct {
			ID       string           `json:"id"`
			Examples int              `json:"examples"`
			Bytes    int64            `json:"bytes"`
			Next     dataset.Position `json:"next"`
		} `json:"summary"`
		Examples []struct {
			Pos dataset.Position `json:"pos"`
			ID  string           `json:"id"`
		} `json:"examples"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("stream -o json: %v\n%s", err, out)
	}
	st, err := dataset.OpenStore(dataset.StoreDir(src))
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := st.Open("shapes")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	r, err := dataset.NewReader(v, dataset.ReaderConfig{Split: dataset.SplitTrain, Shard: 1, NumShards: 2, Seed: 3, Start: dataset.Position{Epoch: 1, Offset: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Summary.ID != man.ID || got.Summary.Examples != 6 || len(got.Examples) != 6 || got.Summary.Bytes != 6*(16*16*4) {
		t.Fatalf("stream summary %+v with %d examples, want 6 of %s", got.Summary, len(got.Examples), man.ID)
	}
	for _, e := range got.Examples {
		pos, want := r.Position(), r.Next()
		if e.Pos != pos || e.ID != want.ID {
			t.Fatalf("streamed %s at %v, reader has %s at %v", e.ID, e.Pos, want.ID, pos)
		}
	}
	if got.Summary.Next != (dataset.Position{Epoch: 2}) {
		t.Errorf("next position %v, want 2/0", got.Summary.Next)
	}

	// Table output with --limit.
	out, err = runApp(t, dst, "dataset", "stream", "--from", addr, "--limit", "3", "shapes")
	if err != nil || !strings.Contains(out, "POS") || !strings.Contains(out, "3 examples of shapes@v1") || !strings.Contains(out, "next position 0/3") {
		t.Fatalf("stream --limit 3: %v\n%s", err, out)
	}

	// pull: registers the same id locally, then finds it already there.
	for i, wantCreated := range []bool{true, false} {
		out, err = runApp(t, dst, "-o", "json", "dataset", "pull", "--from", addr, "shapes")
		if err != nil {
			t.Fatalf("pull %d: %v\n%s", i, err, out)
		}
		var pulled struct {
			Ref        string `json:"ref"`
			ID         string `json:"id"`
			Created    bool   `json:"created"`
			Downloaded bool   `json:"downloaded"`
		}
		if err := json.Unmarshal([]byte(out), &pulled); err != nil {
			t.Fatalf("pull -o json: %v\n%s", err, out)
		}
		if pulled.ID != man.ID || pulled.Ref != "shapes@v1" || pulled.Created != wantCreated || pulled.Downloaded != wantCreated {
			t.Fatalf("pull %d: %+v", i, pulled)
		}
	}
	dstStore, err := dataset.OpenStore(dataset.StoreDir(dst))
	if err != nil {
		t.Fatal(err)
	}
	if err := dstStore.Verify(context.Background(), "shapes@v1"); err != nil {
		t.Fatalf("pulled version: %v", err)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"dataset", "stream", "--from", addr, "--shard", "2/2", "shapes"}, "want 0 <= i < n"},
		{[]string{"dataset", "stream", "--from", addr, "--shard", "x", "shapes"}, "want i/n"},
		{[]string{"dataset", "stream", "--from", addr, "--offset", "99", "shapes"}, "offset 99 out of range"},
		{[]string{"dataset", "stream", "--from", addr, "nope"}, "not found"},
		{[]string{"dataset", "pull", "--from", addr, "shapes@v7"}, "not found"},
	} {
		if out, err := runApp(t, dst, tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v (want an error saying %q)\n%s", tt.args, err, tt.want, out)
		}
	}
}
