package coordinator

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// TestBlockingQueryWaitsOnEveryTableItReads starts blocking queries that
// answer not found because the object they filter by does not exist yet,
// then creates it: each query must wake with an index past the one it
// waited on (before the wait ran out), as the object's table changed.
func TestBlockingQueryWaitsOnEveryTableItReads(t *testing.T) {
	c := newCluster(t, 1, nil)
	s := c.leader(nil).srv
	base := "http://" + s.HTTPAddr()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tests := []struct {
		name   string
		path   string
		create func() error
	}{
		{"checkpoints of a job", "/v1/checkpoints?job=j1", func() error {
			_, err := s.raftApply(ctx, structs.JobSubmitRequestType, &structs.JobSubmitRequest{
				JobID: "j1", Spec: structs.NewJobSpec(testSpec("j1")), DatasetVersionID: shapesV1, SubmitTime: time.Now().UTC(),
			})
			return err
		}},
		{"assignments of a worker", "/v1/workers/w1/assignments", func() error {
			_, err := c.client().RegisterWorker(ctx, api.RegisterWorkerBody{ID: "w1", Addr: "127.0.0.1:1", Meta: api.WorkerMeta{Cores: 1}})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, idx := getIndex(t, base+tt.path)
			if status != http.StatusNotFound || idx == 0 {
				t.Fatalf("GET %s: status %d, index %d; want 404 with an index", tt.path, status, idx)
			}
			type answer struct {
				status int
				idx    uint64
			}
			done := make(chan answer, 1)
			sep := "?"
			if strings.Contains(tt.path, "?") {
				sep = "&"
			}
			go func() {
				status, got := getIndex(t, fmt.Sprintf("%s%sindex=%d&wait=5s", base+tt.path, sep, idx))
				done <- answer{status, got}
			}()
			if err := tt.create(); err != nil {
				t.Fatal(err)
			}
			if a := <-done; a.status != http.StatusOK || a.idx <= idx {
				t.Fatalf("woken with status %d, index %d; want 200 past %d", a.status, a.idx, idx)
			}
		})
	}
}

// getIndex GETs url and returns the status and the index header.
func getIndex(t *testing.T, url string) (int, uint64) {
	resp, err := http.Get(url)
	if err != nil {
		t.Error(err)
		return 0, 0
	}
	resp.Body.Close()
	idx, _ := strconv.ParseUint(resp.Header.Get(api.IndexHeader), 10, 64)
	return resp.StatusCode, idx
}

// TestBlockingQueryPastTheIndex sends a blocking query with an index past
// the server's (as from a server that is ahead, or from before a data
// wipe): it is answered at once, with the server's own index, rather than
// after its whole wait.
func TestBlockingQueryPastTheIndex(t *testing.T) {
	c := newCluster(t, 1, nil)
	base := "http://" + c.leader(nil).srv.HTTPAddr() + "/v1/jobs"
	status, idx := getIndex(t, base)
	if status != http.StatusOK || idx == 0 {
		t.Fatalf("GET /v1/jobs: status %d, index %d", status, idx)
	}
	// The client gives up long before the wait asked for would end.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s?index=%d&wait=5m", base, idx+1000), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("a query past the server's index was not answered at once: %v", err)
	}
	resp.Body.Close()
	got, _ := strconv.ParseUint(resp.Header.Get(api.IndexHeader), 10, 64)
	if resp.StatusCode != http.StatusOK || got != idx {
		t.Fatalf("status %d, index %d; want 200 with the server's index %d", resp.StatusCode, got, idx)
	}
}
