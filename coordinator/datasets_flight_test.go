package coordinator

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/dataset/stream"
)

// TestDatasetUploadServedEverywhere uploads a version through a follower
// of a 3-server cluster; every server then serves it over Arrow Flight
// (importing it from its replicated blob), and a worker's fetch from any
// of them yields the version's content.
func TestDatasetUploadServedEverywhere(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader(nil)
	f := c.followers(l)[0]

	st, err := dataset.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	gen := dataset.ShapesConfig{N: 12, Size: 16, Seed: 5, Workers: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m, _, err := st.Register(ctx, "pets", gen.Meta(), func(yield func(dataset.Example) error) (dataset.Provenance, error) {
		return dataset.Provenance{Source: gen.Source()}, dataset.GenerateShapes(ctx, gen, yield)
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := api.New(f.srv.HTTPAddr()).UploadDataset(ctx, "pets", st.DataPath(m.ID))
	if err != nil {
		t.Fatal(err)
	}
	if v.ID != m.ID || v.Seq != 1 || v.Blob == "" {
		t.Fatalf("registered %+v, want %s as pets v1 with a blob", v, m.ID)
	}
	// Not a version file: refused, naming the problem.
	if _, err := api.New(l.srv.HTTPAddr()).UploadDataset(ctx, "pets", filepath.Join(l.srv.cfg.DataDir, "raft", "raft.db")); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("uploading a non-Arrow file: %v, want ErrInvalid", err)
	}

	for _, n := range c.live() {
		// A follower that has not applied the registration yet answers
		// with the leader's address (see Datasets.Flight); this test
		// checks each server serves from its own store once it knows.
		waitFor(t, 10*time.Second, n.cfg.NodeID+" applies the registration", func() error {
			for _, dv := range n.srv.State().DatasetVersions("") {
				if dv.ID == m.ID {
					return nil
				}
			}
			return fmt.Errorf("version %s not applied", dataset.ShortID(m.ID))
		})
		addr, err := api.New(n.srv.HTTPAddr()).DatasetFlight(ctx, m.ID)
		if err != nil {
			t.Fatalf("%s: flight address for %s: %v", n.cfg.NodeID, dataset.ShortID(m.ID), err)
		}
		if addr != n.srv.FlightAddr() {
			t.Errorf("%s answered %s, its Flight server is at %s", n.cfg.NodeID, addr, n.srv.FlightAddr())
		}
		fc, err := stream.Dial(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		res, err := fc.FetchVersion(ctx, m.ID, t.TempDir())
		fc.Close()
		if err != nil {
			t.Fatalf("%s: fetch over Flight: %v", n.cfg.NodeID, err)
		}
		if res.Bytes == 0 {
			t.Errorf("%s: fetched %+v", n.cfg.NodeID, res)
		}
	}
	// An unknown version is a 404, not a retry.
	if _, err := api.New(l.srv.HTTPAddr()).DatasetFlight(ctx, strings.Repeat("0", 64)); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("unknown version: %v, want ErrNotFound", err)
	}
}
