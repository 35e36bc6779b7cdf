package artifact_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trainctl/trainctl/artifact"
)

func TestFetchFile(t *testing.T) {
	ctx := context.Background()
	store, err := artifact.OpenStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	digest, _, err := store.Put(ctx, strings.NewReader("checkpoint bytes"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(artifact.BlobsPath, artifact.NewHandler(store, artifact.HandlerConfig{}))
	good := httptest.NewServer(mux)
	defer good.Close()
	// A peer that answers every blob with the wrong bytes.
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("something else"))
	}))
	defer liar.Close()
	c := artifact.NewClient(artifact.ClientConfig{})

	dir := t.TempDir()
	path := filepath.Join(dir, "a.ckpt")
	if err := c.FetchFile(ctx, []string{liar.URL}, digest, path); !errors.Is(err, artifact.ErrDigestMismatch) {
		t.Fatalf("fetch from a lying peer: %v, want ErrDigestMismatch", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a rejected blob left %s behind (stat: %v)", path, err)
	}
	// The lying peer first, then a good one: the good one's bytes land.
	if err := c.FetchFile(ctx, []string{liar.URL, good.URL}, digest, path); err != nil {
		t.Fatalf("fetch with a good peer second: %v", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "checkpoint bytes" {
		t.Fatalf("fetched %q, %v", b, err)
	}
	// Present and correct: kept without asking any peer.
	if err := c.FetchFile(ctx, nil, digest, path); err != nil {
		t.Fatalf("fetch of a file already in place: %v", err)
	}
	if err := c.FetchFile(ctx, []string{good.URL}, "sha256:nothex", path); !errors.Is(err, artifact.ErrBadDigest) {
		t.Fatalf("bad digest: %v, want ErrBadDigest", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("temporary files left in %s: %v", dir, entries)
	}
}

// TestFetchFileUndeclaredSizeBounded: a peer that streams a blob without a
// Content-Length (chunked) is cut off at MaxBlobSize, and neither the
// target nor a temporary file is left behind; a blob of exactly the limit
// is fetched.
func TestFetchFileUndeclaredSizeBounded(t *testing.T) {
	const limit = 1000
	exact := strings.Repeat("x", limit)
	exactDigest := artifact.DigestPrefix + sha256Hex(exact)
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, strings.TrimPrefix(exactDigest, artifact.DigestPrefix)) {
			for i := 0; i < limit; i += 100 {
				_, _ = w.Write([]byte(exact[i : i+100]))
				w.(http.Flusher).Flush() // no Content-Length: chunked
			}
			return
		}
		for range 1000 { // 100 kB, far past the limit
			if _, err := w.Write([]byte(strings.Repeat("y", 100))); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	defer endless.Close()
	c := artifact.NewClient(artifact.ClientConfig{MaxBlobSize: limit})
	dir := t.TempDir()
	path := filepath.Join(dir, "big.ckpt")
	err := c.FetchFile(context.Background(), []string{endless.URL}, artifact.DigestPrefix+strings.Repeat("0", 64), path)
	if !errors.Is(err, artifact.ErrTooLarge) || !strings.Contains(err.Error(), "more than 1000 bytes") {
		t.Fatalf("fetch of an endless chunked blob: %v, want ErrTooLarge naming the limit", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("files left in %s: %v", dir, entries)
	}
	if err := c.FetchFile(context.Background(), []string{endless.URL}, exactDigest, path); err != nil {
		t.Fatalf("fetch of a chunked blob of exactly the limit: %v", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != exact {
		t.Fatalf("fetched %d bytes, %v; want the %d-byte blob", len(b), err, limit)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
