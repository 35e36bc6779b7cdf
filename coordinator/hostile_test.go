package coordinator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/artifact"
)

// maxHostileErrorLen bounds the error message of an answer to hostile
// input, which quotes what it refuses truncated.
const maxHostileErrorLen = 1024

// hostileCase is one malformed, oversized or hostile request.
type hostileCase struct {
	name   string
	method string
	// path is the request's path and query, escaped as sent; JOB stands
	// for the id of a job that exists.
	path   string
	body   []byte
	header http.Header
	// status is the status wanted; 0 means any 4xx.
	status int
	// uncoded: the answer is not an api.ErrorBody with a code (Go's own
	// 431; the blob handler's {"error"} bodies).
	uncoded bool
}

// Hostile values of names and ids, as path segments (escaped) and as
// query values.
var (
	hugeID    = strings.Repeat("a", 10<<10)
	oddIDs    = map[string]string{"huge": hugeID, "dotdot": "..%2F..%2Fetc", "utf8": "%FF%FE", "space": "a%20b", "nul": "a%00b"}
	oddValues = map[string]string{"huge": hugeID, "dotdot": "../../etc", "utf8": "%FF%FE", "space": "a b", "nul": "a%00b"}
)

// pathCases are the cases of a route whose path names an object: every odd
// id in place of {param}, each a 400 before any lookup.
func pathCases(method, pattern, param string) []hostileCase {
	var out []hostileCase
	for name, id := range oddIDs {
		out = append(out, hostileCase{
			name: "id " + name, method: method, status: http.StatusBadRequest,
			path: strings.Replace(pattern, "{"+param+"}", id, 1),
		})
	}
	return out
}

// queryCases are the cases of a route with query parameter param: every
// odd value, each a 400.
func queryCases(path, param string) []hostileCase {
	var out []hostileCase
	for name, v := range oddValues {
		if name != "utf8" && name != "nul" {
			v = strings.ReplaceAll(strings.ReplaceAll(v, "/", "%2F"), " ", "%20")
		}
		out = append(out, hostileCase{
			name: param + " " + name, method: "GET", status: http.StatusBadRequest,
			path: path + "?" + param + "=" + v,
		})
	}
	return out
}

// blockingCases are the malformed blocking-query parameters of a GET.
func blockingCases(path string) []hostileCase {
	return []hostileCase{
		{name: "index negative", method: "GET", path: path + "?index=-1", status: http.StatusBadRequest},
		{name: "index huge", method: "GET", path: path + "?index=" + strings.Repeat("9", 40), status: http.StatusBadRequest},
		{name: "wait malformed", method: "GET", path: path + "?index=1&wait=soon", status: http.StatusBadRequest},
	}
}

// bodyCases are the malformed bodies every JSON route refuses.
func bodyCases(path string) []hostileCase {
	deep := strings.Repeat(`{"a":`, 200) + "1" + strings.Repeat("}", 200)
	deepArray := `{"name":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`
	big := `{"name":"` + strings.Repeat("a", maxBodyBytes) + `"}`
	cases := []struct{ name, body string }{
		{"empty body", ""},
		{"malformed JSON", `{"name":`},
		{"unknown field", `{"bogus":1}`},
		{"array", `[1,2,3]`},
		{"string", `"x"`},
		{"trailing data", `{}{}`},
		{"invalid utf-8", "{\"name\":\"\xff\xfe\"}"},
		{"deep nesting", deep},
		{"deep array", deepArray},
		{"oversized", big},
	}
	out := make([]hostileCase, 0, len(cases))
	for _, c := range cases {
		out = append(out, hostileCase{name: c.name, method: "POST", path: path, body: []byte(c.body), status: http.StatusBadRequest})
	}
	return out
}

// bodies are route-specific bad bodies, each a 400.
func bodies(path string, named map[string]string) []hostileCase {
	var out []hostileCase
	for name, b := range named {
		out = append(out, hostileCase{name: name, method: "POST", path: path, body: []byte(b), status: http.StatusBadRequest})
	}
	return out
}

func join(parts ...[]hostileCase) []hostileCase {
	var out []hostileCase
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// hostileCases returns the cases of every route of the API, by pattern.
func hostileCases() map[string][]hostileCase {
	zeros := "sha256:" + strings.Repeat("0", 64)
	validSpec := `{"name":"x","dataset":"shapes@v1"}`
	return map[string][]hostileCase{
		"POST /v1/jobs": join(bodyCases("/v1/jobs"), bodies("/v1/jobs", map[string]string{
			"request_id wrong type": `{"request_id":5,"spec":` + validSpec + `}`,
			"request_id odd":        `{"request_id":"a b/../","spec":` + validSpec + `}`,
			"request_id huge":       `{"request_id":"` + hugeID + `","spec":` + validSpec + `}`,
			"spec wrong type":       `{"spec":[]}`,
			"ranks huge":            `{"spec":{"name":"x","dataset":"shapes@v1","resources":{"ranks":1000000000000}}}`,
			"ranks negative":        `{"spec":{"name":"x","dataset":"shapes@v1","resources":{"ranks":-1}}}`,
			"max_restarts negative": `{"spec":{"name":"x","dataset":"shapes@v1","max_restarts":-5}}`,
			"number overflow":       `{"spec":{"name":"x","dataset":"shapes@v1","max_restarts":1e400}}`,
			"dataset odd":           `{"spec":{"name":"x","dataset":"../../etc@v1"}}`,
			"name huge":             `{"spec":{"name":"` + hugeID + `","dataset":"shapes@v1"}}`,
		})),
		"GET /v1/jobs":      join(queryCases("/v1/jobs", "state"), blockingCases("/v1/jobs")),
		"GET /v1/jobs/{id}": join(pathCases("GET", "/v1/jobs/{id}", "id"), blockingCases("/v1/jobs/JOB")),
		"POST /v1/jobs/{id}/cancel": join(pathCases("POST", "/v1/jobs/{id}/cancel", "id"), []hostileCase{
			{name: "id unknown", method: "POST", path: "/v1/jobs/nope/cancel", status: http.StatusNotFound}, {name: "oversized body", method: "POST", path: "/v1/jobs/JOB/cancel", body: bytes.Repeat([]byte("x"), maxBodyBytes+1), status: http.StatusBadRequest}}),
		"GET /v1/jobs/{id}/metrics": join(pathCases("GET", "/v1/jobs/{id}/metrics", "id"), blockingCases("/v1/jobs/JOB/metrics"), []hostileCase{
			{name: "local not a boolean", method: "GET", path: "/v1/jobs/JOB/metrics?local=maybe", status: http.StatusBadRequest},
		}),
		"POST /v1/jobs/{id}/metrics": join(pathCases("POST", "/v1/jobs/{id}/metrics", "id"), bodyCases("/v1/jobs/JOB/metrics"), bodies("/v1/jobs/JOB/metrics", map[string]string{
			"metrics wrong type": `{"metrics":{"loss":1}}`,
			"step negative":      `{"metrics":[{"step":-1,"values":{"loss":1}}]}`,
			"epoch negative":     `{"metrics":[{"epoch":-1,"values":{"loss":1}}]}`,
			"step overflow":      `{"metrics":[{"step":1e30,"values":{"loss":1}}]}`,
			"other job":          `{"metrics":[{"job_id":"other","values":{"loss":1}}]}`,
			"too many reports":   `{"metrics":[` + strings.TrimSuffix(strings.Repeat(`{"values":{"l":1}},`, maxMetricReports+1), ",") + `]}`,
			"too many values":    `{"metrics":[{"values":{` + manyValues(maxMetricValues+1) + `}}]}`,
			"value name huge":    `{"metrics":[{"values":{"` + hugeID + `":1}}]}`,
		})),
		"POST /v1/jobs/{id}/attempts/{n}": join(pathCases("POST", "/v1/jobs/{id}/attempts/1", "id"), bodyCases("/v1/jobs/JOB/attempts/1"), bodies("/v1/jobs/JOB/attempts/1", map[string]string{
			"state unknown":     `{"state":"exploded"}`,
			"state wrong type":  `{"state":1}`,
			"worker_id odd":     `{"state":"failed","worker_id":"../w"}`,
			"step negative":     `{"state":"running","step":-1}`,
			"epoch huge":        `{"state":"running","epoch":99999999999999999999}`,
			"too many metrics":  `{"state":"running","metrics":{` + manyValues(maxMetricValues+1) + `}}`,
			"metric wrong type": `{"state":"running","metrics":{"loss":"low"}}`,
			"ring unknown":      `{"state":"running","ring":"tangled"}`,
			"rank negative":     `{"state":"running","rank":-1}`,
			"rank huge":         `{"state":"running","rank":99999999999}`,
			"throughput nan":    `{"state":"running","images_per_sec":-1}`,
			"failed_rank ok":    `{"state":"succeeded","failed_rank":0}`,
		}), []hostileCase{
			{name: "attempt zero", method: "POST", path: "/v1/jobs/JOB/attempts/0", body: []byte(`{"state":"failed"}`), status: http.StatusBadRequest},
			{name: "attempt negative", method: "POST", path: "/v1/jobs/JOB/attempts/-1", body: []byte(`{"state":"failed"}`), status: http.StatusBadRequest},
			{name: "attempt huge", method: "POST", path: "/v1/jobs/JOB/attempts/" + strings.Repeat("9", 40), body: []byte(`{"state":"failed"}`), status: http.StatusBadRequest},
			{name: "attempt not a number", method: "POST", path: "/v1/jobs/JOB/attempts/one", body: []byte(`{"state":"failed"}`), status: http.StatusBadRequest},
		}),
		"POST /v1/jobs/{id}/attempts/{n}/ranks/{r}": join(pathCases("POST", "/v1/jobs/{id}/attempts/1/ranks/0", "id"), bodyCases("/v1/jobs/JOB/attempts/1/ranks/0"),
			bodies("/v1/jobs/JOB/attempts/1/ranks/0", map[string]string{
				"worker_id missing": `{"addr":"127.0.0.1:1"}`,
				"worker_id odd":     `{"worker_id":"../w","addr":"127.0.0.1:1"}`,
				"addr missing":      `{"worker_id":"w1"}`,
				"addr no port":      `{"worker_id":"w1","addr":"127.0.0.1"}`,
				"addr port zero":    `{"worker_id":"w1","addr":"127.0.0.1:0"}`,
				"addr port huge":    `{"worker_id":"w1","addr":"127.0.0.1:99999"}`,
				"addr no host":      `{"worker_id":"w1","addr":":80"}`,
				"addr huge":         `{"worker_id":"w1","addr":"` + hugeID + `:80"}`,
			}), []hostileCase{
				{name: "rank negative", method: "POST", path: "/v1/jobs/JOB/attempts/1/ranks/-1", body: []byte(`{"worker_id":"w1","addr":"127.0.0.1:80"}`), status: http.StatusBadRequest},
				{name: "rank huge", method: "POST", path: "/v1/jobs/JOB/attempts/1/ranks/" + strings.Repeat("9", 40), body: []byte(`{"worker_id":"w1","addr":"127.0.0.1:80"}`), status: http.StatusBadRequest},
				{name: "attempt zero", method: "POST", path: "/v1/jobs/JOB/attempts/0/ranks/0", body: []byte(`{"worker_id":"w1","addr":"127.0.0.1:80"}`), status: http.StatusBadRequest},
				{name: "unknown attempt", method: "POST", path: "/v1/jobs/JOB/attempts/9/ranks/0", body: []byte(`{"worker_id":"w1","addr":"127.0.0.1:80"}`)},
				{name: "not running", method: "POST", path: "/v1/jobs/JOB/attempts/1/ranks/0", body: []byte(`{"worker_id":"w1","addr":"127.0.0.1:80"}`), status: http.StatusConflict},
			}),
		"GET /v1/jobs/{id}/attempts/{n}/rendezvous": join(pathCases("GET", "/v1/jobs/{id}/attempts/1/rendezvous", "id"), blockingCases("/v1/jobs/JOB/attempts/1/rendezvous"), []hostileCase{
			{name: "attempt zero", method: "GET", path: "/v1/jobs/JOB/attempts/0/rendezvous", status: http.StatusBadRequest},
			{name: "attempt huge", method: "GET", path: "/v1/jobs/JOB/attempts/" + strings.Repeat("9", 40) + "/rendezvous", status: http.StatusBadRequest},
			{name: "unknown attempt", method: "GET", path: "/v1/jobs/JOB/attempts/9/rendezvous", status: http.StatusNotFound},
		}),
		"GET /v1/checkpoints": join(queryCases("/v1/checkpoints", "job"), blockingCases("/v1/checkpoints")),
		"POST /v1/checkpoints": join(bodyCases("/v1/checkpoints"), bodies("/v1/checkpoints", map[string]string{
			"digest odd":       `{"digest":"../x","job_id":"JOB"}`,
			"digest md5":       `{"digest":"md5:00","job_id":"JOB"}`,
			"digest huge":      `{"digest":"sha256:` + hugeID + `","job_id":"JOB"}`,
			"job_id odd":       `{"digest":"` + zeros + `","job_id":"../j"}`,
			"job_id missing":   `{"digest":"` + zeros + `"}`,
			"step negative":    `{"digest":"` + zeros + `","job_id":"JOB","step":-1}`,
			"attempt negative": `{"digest":"` + zeros + `","job_id":"JOB","attempt":-1}`,
			"size wrong type":  `{"digest":"` + zeros + `","job_id":"JOB","step":"big"}`,
		})),
		"POST /v1/sweeps": join(bodyCases("/v1/sweeps"), bodies("/v1/sweeps", map[string]string{
			"request_id odd":  `{"request_id":"a b","spec":{}}`,
			"spec wrong type": `{"spec":"grid"}`,
			"spec empty":      `{"spec":{}}`,
		})),
		"GET /v1/sweeps":      join(queryCases("/v1/sweeps", "state"), blockingCases("/v1/sweeps")),
		"GET /v1/sweeps/{id}": pathCases("GET", "/v1/sweeps/{id}", "id"),
		"POST /v1/sweeps/{id}/cancel": join(pathCases("POST", "/v1/sweeps/{id}/cancel", "id"), []hostileCase{
			{name: "id unknown", method: "POST", path: "/v1/sweeps/nope/cancel", status: http.StatusNotFound},
		}),
		"GET /v1/sweeps/{id}/trials": pathCases("GET", "/v1/sweeps/{id}/trials", "id"),
		"GET /v1/sweeps/{id}/replay": pathCases("GET", "/v1/sweeps/{id}/replay", "id"),
		"GET /v1/models":             blockingCases("/v1/models"),
		"POST /v1/models": join(bodyCases("/v1/models"), bodies("/v1/models", map[string]string{
			"name odd":        `{"name":"../m","job_id":"JOB"}`,
			"name huge":       `{"name":"` + hugeID + `","job_id":"JOB"}`,
			"name missing":    `{"job_id":"JOB"}`,
			"checkpoint odd":  `{"name":"m","checkpoint":"../c"}`,
			"sweep_id odd":    `{"name":"m","sweep_id":"s/../x"}`,
			"job_id odd":      `{"name":"m","job_id":"` + hugeID + `"}`,
			"no source":       `{"name":"m"}`,
			"name wrong type": `{"name":["m"],"job_id":"JOB"}`,
		})),
		"GET /v1/models/{name}": join(pathCases("GET", "/v1/models/{name}", "name"), blockingCases("/v1/models/m")),
		"GET /v1/workers":       blockingCases("/v1/workers"),
		"POST /v1/workers/register": join(bodyCases("/v1/workers/register"), bodies("/v1/workers/register", map[string]string{
			"id odd":         `{"id":"../w","addr":"h:1","meta":{"cores":1}}`,
			"id huge":        `{"id":"` + hugeID + `","addr":"h:1","meta":{"cores":1}}`,
			"id missing":     `{"addr":"h:1","meta":{"cores":1}}`,
			"cores negative": `{"id":"w","addr":"h:1","meta":{"cores":-1}}`,
			"cores huge":     `{"id":"w","addr":"h:1","meta":{"cores":1000000000}}`,
			"cores overflow": `{"id":"w","addr":"h:1","meta":{"cores":1e100}}`,
			"addr huge":      `{"id":"w","addr":"` + hugeID + `","meta":{"cores":1}}`,
			"zone huge":      `{"id":"w","addr":"h:1","meta":{"cores":1,"zone":"` + hugeID + `"}}`,
			"meta wrong":     `{"id":"w","addr":"h:1","meta":[]}`,
		})),
		"GET /v1/workers/{id}":             pathCases("GET", "/v1/workers/{id}", "id"),
		"GET /v1/workers/{id}/assignments": join(pathCases("GET", "/v1/workers/{id}/assignments", "id"), blockingCases("/v1/workers/w/assignments")),
		"POST /v1/workers/{id}/drain": join(pathCases("POST", "/v1/workers/{id}/drain", "id"), []hostileCase{
			{name: "id unknown", method: "POST", path: "/v1/workers/nope/drain", status: http.StatusNotFound},
		}),
		"GET /v1/datasets": join(queryCases("/v1/datasets", "name"), blockingCases("/v1/datasets")),
		"POST /v1/datasets": join(bodyCases("/v1/datasets"), bodies("/v1/datasets", map[string]string{
			"name odd":            `{"name":"../d","id":"abc","manifest":{}}`,
			"name upper":          `{"name":"Shapes","id":"abc","manifest":{}}`,
			"id not hex":          `{"name":"d","id":"xyz","manifest":{}}`,
			"id huge":             `{"name":"d","id":"` + strings.Repeat("a", 65) + `","manifest":{}}`,
			"manifest missing":    `{"name":"d","id":"abc"}`,
			"manifest an array":   `{"name":"d","id":"abc","manifest":[]}`,
			"blob odd":            `{"name":"d","id":"abc","manifest":{"name":"d","id":"abc"},"blob":"../b"}`,
			"manifest huge":       `{"name":"d","id":"abc","manifest":{"name":"d","id":"abc","parent":"` + strings.Repeat("a", maxManifestBytes) + `"}}`,
			"manifest unknown":    `{"name":"d","id":"abc","manifest":{"name":"d","id":"abc","bogus":1}}`,
			"manifest typed":      `{"name":"d","id":"abc","manifest":{"name":"d","id":"abc","seq":"one"}}`,
			"manifest other id":   `{"name":"d","id":"abc","manifest":{"name":"d","id":"abd"}}`,
			"manifest no id":      `{"name":"d","id":"abc","manifest":{"name":"d"}}`,
			"manifest other name": `{"name":"d","id":"abc","manifest":{"name":"e","id":"abc"}}`,
		})),
		"POST /v1/datasets/upload": {
			{name: "name missing", method: "POST", path: "/v1/datasets/upload", body: []byte("x"), status: http.StatusBadRequest},
			{name: "name odd", method: "POST", path: "/v1/datasets/upload?name=..%2Fd", body: []byte("x"), status: http.StatusBadRequest},
			{name: "name huge", method: "POST", path: "/v1/datasets/upload?name=" + hugeID, body: []byte("x"), status: http.StatusBadRequest},
			{name: "not an arrow file", method: "POST", path: "/v1/datasets/upload?name=d", body: []byte("not arrow"), status: http.StatusBadRequest},
		},
		"GET /v1/datasets/flight": queryCases("/v1/datasets/flight", "id"),
		"DELETE /v1/datasets/{name}/versions/{version}": join(pathCases("DELETE", "/v1/datasets/{name}/versions/v1", "name"), []hostileCase{
			{name: "version huge", method: "DELETE", path: "/v1/datasets/shapes/versions/" + hugeID, status: http.StatusBadRequest},
			{name: "version unknown", method: "DELETE", path: "/v1/datasets/shapes/versions/v99", status: http.StatusBadRequest},
			{name: "dataset unknown", method: "DELETE", path: "/v1/datasets/nope/versions/v1", status: http.StatusBadRequest},
		}),
		"GET /v1/gc/jobs":   blockingCases("/v1/gc/jobs"),
		"GET /v1/gc/sweeps": blockingCases("/v1/gc/sweeps"),
		"GET /v1/cluster/status": {
			{name: "header huge", method: "GET", path: "/v1/cluster/status", header: http.Header{"X-Big": {strings.Repeat("h", 2*maxHeaderBytes)}},
				status: http.StatusRequestHeaderFieldsTooLarge, uncoded: true},
		},
		"POST /v1/cluster/join": join(bodyCases("/v1/cluster/join"), bodies("/v1/cluster/join", map[string]string{
			"id odd":               `{"id":"../c","raft_addr":"h:1","http_addr":"h:2"}`,
			"id missing":           `{"raft_addr":"h:1","http_addr":"h:2"}`,
			"raft_addr missing":    `{"id":"c9","http_addr":"h:2"}`,
			"raft_addr not addr":   `{"id":"c9","raft_addr":"nowhere","http_addr":"h:2"}`,
			"http_addr huge":       `{"id":"c9","raft_addr":"h:1","http_addr":"` + hugeID + `:1"}`,
			"addresses wrong type": `{"id":"c9","raft_addr":1,"http_addr":2}`,
			"joiner not there":     `{"id":"c9","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:1"}`,
		})),
		artifact.BlobsPath: {
			{name: "digest odd", method: "GET", path: "/v1/blobs/..%2Fx", uncoded: true},
			{name: "digest huge", method: "GET", path: "/v1/blobs/sha256:" + hugeID, status: http.StatusBadRequest, uncoded: true},
			{name: "put digest odd", method: "PUT", path: "/v1/blobs/md5:00", body: []byte("x"), status: http.StatusBadRequest, uncoded: true},
			{name: "put digest mismatch", method: "PUT", path: "/v1/blobs/" + zeros, body: []byte("x"), status: http.StatusConflict, uncoded: true},
		},
	}
}

// manyValues returns n metric values as JSON object members.
func manyValues(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"m%d":1`, i)
	}
	return strings.Join(parts, ",")
}

// TestHostileInput sends malformed, oversized and hostile requests to every
// route of the API, on the leader and on a follower, and checks that each
// is answered 4xx with a JSON error body and a code, that none changes the
// state, and that the server answers the next request.
func TestHostileInput(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader(nil)
	j := submit(t, c.client(), testSpec("victim"))
	cases := hostileCases()

	// Every route has cases, and every case a route: a new route fails
	// here until it is given its hostile inputs.
	routes := map[string]bool{}
	for _, rt := range l.srv.apiRoutes() {
		routes[rt.pattern] = true
		if len(cases[rt.pattern]) == 0 {
			t.Errorf("route %q has no hostile-input cases", rt.pattern)
		}
	}
	for p := range cases {
		if !routes[p] {
			t.Errorf("cases for %q, which is no route", p)
		}
	}
	patterns := make([]string, 0, len(cases))
	for p := range cases {
		patterns = append(patterns, p)
	}
	sort.Strings(patterns)

	before := c.converged(c.live())
	for _, target := range []*node{l, c.followers(l)[0]} {
		role := "leader"
		if target != l {
			role = "follower"
		}
		base := "http://" + target.srv.HTTPAddr()
		t.Run(role, func(t *testing.T) {
			for _, p := range patterns {
				for _, hc := range cases[p] {
					t.Run(p+"/"+hc.name, func(t *testing.T) {
						idx := l.srv.State().Index()
						tIdx := target.srv.State().Index()
						status, data := sendHostile(t, c, base, hc, j.ID)
						switch {
						case hc.status != 0 && status != hc.status:
							t.Fatalf("status %d, want %d: %.300s", status, hc.status, data)
						case status < 400 || status > 499:
							t.Fatalf("status %d, want 4xx: %.300s", status, data)
						}
						t.Logf("%d %.200s", status, data)
						if !hc.uncoded {
							var eb api.ErrorBody
							if err := json.Unmarshal(data, &eb); err != nil || eb.Error == "" || eb.Code == "" || eb.RequestID == "" {
								t.Fatalf("answer %.300s is no JSON error body with a code and request id (%v)", data, err)
							}
							// Errors quote bad input truncated, never whole.
							if len(eb.Error) > maxHostileErrorLen {
								t.Fatalf("error of %d bytes, the most is %d: %.300s", len(eb.Error), maxHostileErrorLen, eb.Error)
							}
						}
						if got := l.srv.State().Index(); got != idx {
							t.Fatalf("the leader's state index moved from %d to %d", idx, got)
						}
						if got := target.srv.State().Index(); got != tIdx {
							t.Fatalf("the %s's state index moved from %d to %d", role, tIdx, got)
						}
						resp, err := http.Get(base + "/v1/cluster/status")
						if err != nil {
							t.Fatalf("the %s no longer answers: %v", role, err)
						}
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							t.Fatalf("the %s answers status %d", role, resp.StatusCode)
						}
					})
				}
			}
		})
	}
	if after := c.converged(c.live()); !bytes.Equal(after, before) {
		t.Fatal("the hostile requests changed the replicated state")
	}
}

// sendHostile sends one case and returns the answer's status and body. An
// answer that there is no leader (a busy test machine can make the
// cluster hold an election) is no answer to the input: the case is sent
// again once there is a leader.
func sendHostile(t *testing.T, c *testCluster, base string, hc hostileCase, jobID string) (int, []byte) {
	t.Helper()
	for range 5 {
		status, data := sendHostileOnce(t, base, hc, jobID)
		var eb api.ErrorBody
		if status != http.StatusServiceUnavailable || json.Unmarshal(data, &eb) != nil ||
			eb.Code != api.CodeNoLeader && eb.Code != api.CodeNotLeader {
			return status, data
		}
		c.leader(nil)
	}
	t.Fatalf("no leader to answer %s %.80s", hc.method, hc.path)
	return 0, nil
}

// sendHostileOnce sends one case and returns the answer.
func sendHostileOnce(t *testing.T, base string, hc hostileCase, jobID string) (int, []byte) {
	t.Helper()
	path := strings.ReplaceAll(hc.path, "JOB", jobID)
	body := bytes.ReplaceAll(hc.body, []byte("JOB"), []byte(jobID))
	req, err := http.NewRequest(hc.method, base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("request %s %s: %v", hc.method, api.Truncate(path, 80), err)
	}
	for k, v := range hc.header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", hc.method, api.Truncate(path, 80), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return resp.StatusCode, data
}
