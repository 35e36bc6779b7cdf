package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/artifact"
)

// zeroReader yields n zero bytes.
type zeroReader struct{ left int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.left <= 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), z.left)
	clear(p[:n])
	z.left -= n
	return int(n), nil
}

// tempFiles lists the files in n's upload and blob temporary directories.
func tempFiles(t testing.TB, n *node) []string {
	t.Helper()
	var out []string
	for _, dir := range []string{uploadsDir(n.cfg.DataDir), filepath.Join(artifact.StoreDir(n.cfg.DataDir), "tmp")} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	legacy, _ := filepath.Glob(filepath.Join(n.cfg.DataDir, ".dataset-*"))
	return append(out, legacy...)
}

// TestUploadOverLimit sends bodies over the configured limits to the
// dataset upload and blob routes of the leader and of a follower, with a
// declared length and chunked: each is refused with 413 and code
// too_large, the state does not change and no temporary file is left on
// any server.
func TestUploadOverLimit(t *testing.T) {
	const maxDataset, maxBlob = 1 << 20, 2 << 20
	c := newCluster(t, 3, func(cfg *Config) {
		cfg.MaxDatasetBytes, cfg.MaxBlobBytes = maxDataset, maxBlob
	})
	l := c.leader(nil)
	f := c.followers(l)[0]
	blob := artifact.BlobsPath + "sha256:" + strings.Repeat("ab", 32)
	before := len(l.srv.State().DatasetVersions(""))

	tests := []struct {
		route   string
		method  string
		path    string
		size    int64
		declare bool
	}{
		{"upload", http.MethodPost, "/v1/datasets/upload?name=big", maxDataset + 1, true},
		{"upload", http.MethodPost, "/v1/datasets/upload?name=big", maxDataset + 1, false},
		{"upload", http.MethodPost, "/v1/datasets/upload?name=big", 64 * maxDataset, false},
		{"blob", http.MethodPut, blob, maxBlob + 1, true},
		{"blob", http.MethodPut, blob, maxBlob + 1, false},
		{"blob", http.MethodPut, blob, 64 * maxBlob, false},
	}
	for _, target := range []*node{l, f} {
		for _, tt := range tests {
			name := fmt.Sprintf("%s/%s/%d/declared=%v", target.cfg.NodeID, tt.route, tt.size, tt.declare)
			t.Run(name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				req, err := http.NewRequestWithContext(ctx, tt.method, "http://"+target.srv.HTTPAddr()+tt.path, io.NopCloser(&zeroReader{tt.size}))
				if err != nil {
					t.Fatal(err)
				}
				req.ContentLength = -1
				if tt.declare {
					req.ContentLength = tt.size
				}
				resp, err := (&http.Transport{}).RoundTrip(req)
				if err != nil {
					t.Fatalf("no answer: %v", err)
				}
				defer resp.Body.Close()
				var eb api.ErrorBody
				if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil {
					t.Fatalf("status %d, body not JSON: %v", resp.StatusCode, err)
				}
				if resp.StatusCode != http.StatusRequestEntityTooLarge || eb.Code != api.CodeTooLarge {
					t.Fatalf("status %d code %q (%s), want 413 too_large", resp.StatusCode, eb.Code, eb.Error)
				}
			})
		}
	}
	for _, n := range c.live() {
		waitFor(t, 10*time.Second, n.cfg.NodeID+" removes its temporary files", func() error {
			if files := tempFiles(t, n); len(files) > 0 {
				return fmt.Errorf("left %v", files)
			}
			return nil
		})
		if got := len(n.srv.State().DatasetVersions("")); got != before {
			t.Errorf("%s: %d dataset versions, want %d", n.cfg.NodeID, got, before)
		}
	}
}

// TestUploadAbandoned checks that an upload whose client goes away
// midway leaves no temporary file, and that a server removes the
// temporary files a crash left (in today's directory and where earlier
// versions put them) when it starts.
func TestUploadAbandoned(t *testing.T) {
	c := newCluster(t, 1, nil)
	n := c.nodes[0]

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.srv.HTTPAddr()+"/v1/datasets/upload?name=gone", pr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	if _, err := pw.Write(make([]byte, 256<<10)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the upload's temporary file", func() error {
		if len(tempFiles(t, n)) == 0 {
			return errors.New("none yet")
		}
		return nil
	})
	cancel()
	pw.CloseWithError(errors.New("client gone"))
	<-done
	waitFor(t, 10*time.Second, "the abandoned upload's file to go", func() error {
		if files := tempFiles(t, n); len(files) > 0 {
			return fmt.Errorf("left %v", files)
		}
		return nil
	})

	c.stop(0)
	for _, p := range []string{filepath.Join(uploadsDir(n.cfg.DataDir), "upload-123"), filepath.Join(n.cfg.DataDir, ".dataset-123.arrow")} {
		if err := os.WriteFile(p, []byte("left by a crash"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.start(0)
	if files := tempFiles(t, n); len(files) > 0 {
		t.Errorf("after a restart: left %v", files)
	}
}
