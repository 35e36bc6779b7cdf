package coordinator

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/artifact"
)

func artifactDigest(b []byte) string { return artifact.DigestOf(b) }

func newArtifactClient() *artifact.Client { return artifact.NewClient(artifact.ClientConfig{}) }

func TestCheckpointBlobsReachEveryCoordinator(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := c.client()
	j := submit(t, cl, testSpec("ckpt"))
	l := c.leader(nil)
	f := c.followers(l)

	// Uploaded to a follower, registered: every coordinator has it.
	d1 := uploadBlob(t, f[0].srv.HTTPAddr(), testCheckpoint("checkpoint 1"))
	if _, err := cl.RegisterCheckpoint(ctx, api.RegisterCheckpointBody{Digest: d1, JobID: j.ID, Step: 1}); err != nil {
		t.Fatal(err)
	}
	// So does a dataset version's blob.
	dv := uploadBlob(t, f[1].srv.HTTPAddr(), []byte("dataset version content"))
	v, err := cl.RegisterDataset(ctx, api.RegisterDatasetBody{Name: "pets", ID: "ab12cd", Manifest: []byte(`{"name":"pets","id":"ab12cd"}`), Blob: dv})
	if err != nil || v.Blob != dv {
		t.Fatalf("register dataset with blob: %+v, %v", v, err)
	}
	for _, n := range c.live() {
		for _, d := range []string{d1, dv} {
			if !n.srv.blobs.Has(d) {
				t.Fatalf("%s lacks %s after registration", n.cfg.NodeID, d)
			}
		}
	}

	// One coordinator down: the blob reaches the others, the record is
	// committed, and the stopped one fetches the blob when it is back.
	down := slices.Index(c.nodes, f[1])
	c.stop(down)
	d2 := uploadBlob(t, l.srv.HTTPAddr(), testCheckpoint("checkpoint 2"))
	if _, err := cl.RegisterCheckpoint(ctx, api.RegisterCheckpointBody{Digest: d2, JobID: j.ID, Step: 2}); err != nil {
		t.Fatal(err)
	}
	c.start(down)
	waitFor(t, 15*time.Second, "restarted coordinator catches up on blobs", func() error {
		if s := c.nodes[down].srv; !s.blobs.Has(d2) {
			return fmt.Errorf("%s lacks %s", s.NodeID(), d2)
		}
		return nil
	})
	if !c.nodes[down].srv.blobs.Has(d1) {
		t.Fatalf("restarted coordinator lost %s", d1)
	}

	// Registering a blob nobody has is refused.
	missing := artifact.DigestOf([]byte("never uploaded"))
	if _, err := cl.RegisterCheckpoint(ctx, api.RegisterCheckpointBody{Digest: missing, JobID: j.ID}); err == nil {
		t.Fatal("registered a checkpoint whose blob is nowhere")
	}
}
