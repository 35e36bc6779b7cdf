package coordinator

import (
	"context"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/trainctl/trainctl/dataset"
)

// TestForwardedUploadWaitsForTheLeader uploads a dataset version through a
// follower whose wait for an ordinary forwarded answer is short, while the
// leader is slow to import it: the follower must wait for the leader's
// answer (201) rather than answer 503 while the leader goes on to commit.
func TestForwardedUploadWaitsForTheLeader(t *testing.T) {
	const headerTimeout = 200 * time.Millisecond
	c := newCluster(t, 2, func(cfg *Config) { cfg.limits.forwardHeaderTimeout = headerTimeout })
	l := c.leader(nil)
	f := c.followers(l)[0]

	st, err := dataset.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	gen := dataset.ShapesConfig{N: 8, Size: 16, Seed: 5, Workers: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, _, err := st.Register(ctx, "pets", gen.Meta(), func(yield func(dataset.Example) error) (dataset.Provenance, error) {
		return dataset.Provenance{Source: gen.Source()}, dataset.GenerateShapes(ctx, gen, yield)
	})
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.Open(st.DataPath(m.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()

	// The leader imports one upload at a time: holding its lock makes it
	// slower to answer than the follower's ordinary wait, several times.
	l.srv.datasets.importMu.Lock()
	held := time.AfterFunc(5*headerTimeout, l.srv.datasets.importMu.Unlock)
	defer func() {
		if held.Stop() {
			l.srv.datasets.importMu.Unlock()
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+f.srv.HTTPAddr()+"/v1/datasets/upload?name=pets", file)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload through the follower: status %d %s, want 201", resp.StatusCode, data)
	}
}
