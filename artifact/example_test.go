package artifact_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/trainctl/trainctl/artifact"
)

// A leader stores a blob, replicates it to a follower, and only then would
// propose the Raft entry that references the digest.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "artifact-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The follower serves its store under /v1/blobs/.
	follower, err := artifact.OpenStore(dir+"/follower", nil)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(artifact.BlobsPath, artifact.NewHandler(follower, artifact.HandlerConfig{}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	leader, err := artifact.OpenStore(dir+"/leader", nil)
	if err != nil {
		log.Fatal(err)
	}
	rep := artifact.NewReplicator(leader, artifact.ReplicatorConfig{})
	digest, size, err := leader.Put(ctx, strings.NewReader("checkpoint bytes"))
	if err != nil {
		log.Fatal(err)
	}
	if err := rep.Replicate(ctx, digest, []string{srv.URL}); err != nil {
		log.Fatal(err) // do not propose the entry
	}
	fmt.Println(digest, size, follower.Has(digest))
	// Output: sha256:469f693d77e177ec6267a25a17f3d1c60a1156bbc63e63d23b2c02eb15d1a38c 16 true
}
