package artifact_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trainctl/trainctl/coordinator/artifact"
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
