package coordinator

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
)

func TestHTTPAPI(t *testing.T) {
	c := newCluster(t, 1, nil)
	base := "http://" + c.nodes[0].srv.HTTPAddr()
	const validJob = `{"request_id":"r1","spec":{"name":"pets","dataset":"shapes@v1"}}`
	const manifest = `{"name":"shapes","id":"abc","seq":1}`

	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantCode   string
		wantInErr  string
	}{
		{"submit", "POST", "/v1/jobs", validJob, 201, "", ""},
		{"submit again", "POST", "/v1/jobs", validJob, 200, "", ""},
		{"list jobs", "GET", "/v1/jobs", "", 200, "", ""},
		{"bad hyperparameter", "POST", "/v1/jobs", `{"request_id":"r2","spec":{"name":"x","dataset":"shapes@v1","hyperparameters":{"lr":-1}}}`, 400, api.CodeInvalid, "hyperparameters.lr"},
		{"wrong type in spec", "POST", "/v1/jobs", `{"request_id":"r2","spec":{"name":"x","dataset":"shapes@v1","resources":{"ranks":"two"}}}`, 400, api.CodeInvalid, "ranks"},
		{"unknown field", "POST", "/v1/jobs", `{"request_id":"r2","bogus":1}`, 400, api.CodeInvalid, "bogus"},
		{"wrong type", "POST", "/v1/jobs", `{"request_id":5}`, 400, api.CodeInvalid, "request_id"},
		{"missing spec", "POST", "/v1/jobs", `{"request_id":"r2"}`, 400, api.CodeInvalid, "spec"},
		{"empty body", "POST", "/v1/jobs", ``, 400, api.CodeInvalid, "body"},
		{"unknown job", "GET", "/v1/jobs/nope", "", 404, api.CodeNotFound, "nope"},
		{"cancel unknown job", "POST", "/v1/jobs/nope/cancel", "", 404, api.CodeNotFound, "nope"},
		{"metrics of unknown job", "GET", "/v1/jobs/nope/metrics", "", 404, api.CodeNotFound, "nope"},
		{"checkpoints of unknown job", "GET", "/v1/checkpoints?job=nope", "", 404, api.CodeNotFound, "nope"},
		{"all checkpoints", "GET", "/v1/checkpoints", "", 200, "", ""},
		{"workers", "GET", "/v1/workers", "", 200, "", ""},
		{"unknown worker", "GET", "/v1/workers/nope", "", 404, api.CodeNotFound, "nope"},
		{"drain unknown worker", "POST", "/v1/workers/nope/drain", "", 404, api.CodeNotFound, "nope"},
		{"register dataset", "POST", "/v1/datasets", `{"name":"shapes","id":"abc","manifest":` + manifest + `}`, 201, "", ""},
		{"register dataset again", "POST", "/v1/datasets", `{"name":"shapes","id":"abc","manifest":` + manifest + `}`, 200, "", ""},
		{"dataset without id", "POST", "/v1/datasets", `{"name":"shapes","manifest":{}}`, 400, api.CodeInvalid, "id"},
		{"datasets", "GET", "/v1/datasets?name=shapes", "", 200, "", ""},
		{"unknown dataset", "POST", "/v1/jobs", `{"request_id":"r3","spec":{"name":"x","dataset":"pets@v1"}}`, 400, api.CodeInvalid, "spec.dataset"},
		{"unknown dataset version", "POST", "/v1/jobs", `{"request_id":"r3","spec":{"name":"x","dataset":"shapes@v9"}}`, 400, api.CodeInvalid, "spec.dataset"},
		{"register worker", "POST", "/v1/workers/register", `{"id":"w1","addr":"10.0.0.1:7500","meta":{"cores":4,"gpus":0,"spot":false}}`, 200, "", ""},
		{"register worker without id", "POST", "/v1/workers/register", `{"meta":{"cores":4}}`, 400, api.CodeInvalid, "id"},
		{"register worker with negative cores", "POST", "/v1/workers/register", `{"id":"w2","meta":{"cores":-1}}`, 400, api.CodeInvalid, "meta"},
		{"assignments", "GET", "/v1/workers/w1/assignments", "", 200, "", ""},
		{"assignments of unknown worker", "GET", "/v1/workers/nope/assignments", "", 404, api.CodeNotFound, "nope"},
		{"report on unknown job", "POST", "/v1/jobs/nope/attempts/1", `{"state":"failed"}`, 404, api.CodeNotFound, "nope"},
		{"report on bad attempt number", "POST", "/v1/jobs/nope/attempts/zero", `{"state":"failed"}`, 400, api.CodeInvalid, "attempt"},
		{"metrics for unknown job", "POST", "/v1/jobs/nope/metrics", `{"metrics":[{"step":1,"values":{"loss":1}}]}`, 404, api.CodeNotFound, "nope"},
		{"checkpoint with bad digest", "POST", "/v1/checkpoints", `{"digest":"md5:x","job_id":"JOB"}`, 400, api.CodeInvalid, "digest"},
		{"checkpoint of unknown job", "POST", "/v1/checkpoints", `{"digest":"sha256:` + strings.Repeat("0", 64) + `","job_id":"nope"}`, 404, api.CodeNotFound, "job_id"},
		{"checkpoint without blob", "POST", "/v1/checkpoints", `{"digest":"sha256:` + strings.Repeat("0", 64) + `","job_id":"JOB"}`, 404, api.CodeNotFound, "upload"},
		{"blob not there", "GET", "/v1/blobs/sha256:" + strings.Repeat("0", 64), "", 404, "", ""},
		{"join without addresses", "POST", "/v1/cluster/join", `{"id":"x"}`, 400, api.CodeInvalid, "raft_addr"},
		{"status", "GET", "/v1/cluster/status", "", 200, "", ""},
	}
	jobID := ""
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqBody := strings.ReplaceAll(tt.body, "JOB", jobID)
			req, err := http.NewRequest(tt.method, base+tt.path, strings.NewReader(reqBody))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			if tt.name == "submit" {
				var j api.Job
				if err := json.Unmarshal(body, &j); err != nil {
					t.Fatal(err)
				}
				jobID = j.ID
			}
			if tt.wantCode == "" {
				return
			}
			var eb api.ErrorBody
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatalf("error body %s: %v", body, err)
			}
			if eb.Code != tt.wantCode || !strings.Contains(eb.Error, tt.wantInErr) {
				t.Fatalf("error %+v, want code %s mentioning %q", eb, tt.wantCode, tt.wantInErr)
			}
		})
	}
}

// TestBlockingQuery checks a blocking GET end to end: it answers at once
// without an index or for a passed one, holds until its table changes, and
// refuses bad parameters.
func TestBlockingQuery(t *testing.T) {
	c := newCluster(t, 1, nil)
	s := c.leader(nil).srv
	base := "http://" + s.HTTPAddr() + "/v1/jobs"
	get := func(query string) (*http.Response, uint64) {
		t.Helper()
		resp, err := http.Get(base + query)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		idx, _ := strconv.ParseUint(resp.Header.Get(api.IndexHeader), 10, 64)
		return resp, idx
	}
	resp, idx := get("")
	if resp.StatusCode != http.StatusOK || idx == 0 {
		t.Fatalf("GET /v1/jobs: %d, index %d", resp.StatusCode, idx)
	}
	if resp, _ := get("?index=nope"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("index=nope: %d, want 400", resp.StatusCode)
	}
	if resp, _ := get("?index=1&wait=-1s"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("wait=-1s: %d, want 400", resp.StatusCode)
	}
	if _, got := get(fmt.Sprintf("?index=%d&wait=100ms", idx)); got != idx {
		t.Fatalf("a wait that timed out answered index %d, want %d", got, idx)
	}

	done := make(chan uint64, 1)
	go func() {
		_, got := get(fmt.Sprintf("?index=%d&wait=30s", idx))
		done <- got
	}()
	submit(t, c.client(), testSpec("wake"))
	select {
	case got := <-done:
		if got <= idx {
			t.Fatalf("woken with index %d, want past %d", got, idx)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the blocking query did not answer after a submission")
	}
}
