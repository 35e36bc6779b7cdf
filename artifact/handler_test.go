package artifact

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// onlyReader hides a reader's other methods (and length), so requests
// with it as body are sent chunked.
type onlyReader struct{ io.Reader }

func TestHandler(t *testing.T) {
	const limit = 1 << 20
	s := openTestStore(t)
	mux := http.NewServeMux()
	mux.Handle(BlobsPath, NewHandler(s, HandlerConfig{MaxBlobSize: limit, Logger: quietLog()}))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := context.Background()

	stored := randomBytes(10, 100_000)
	storedD, _, err := s.Put(ctx, bytes.NewReader(stored))
	if err != nil {
		t.Fatal(err)
	}
	fresh := randomBytes(11, 300_000)
	freshD := DigestOf(fresh)
	big := randomBytes(12, limit+1)
	bigD := DigestOf(big)
	absent := DigestOf([]byte("absent"))

	for _, tc := range []struct {
		name     string
		method   string
		path     string
		body     io.Reader
		header   map[string]string
		wantCode int
		wantBody []byte // for 2xx answers that are not JSON
		stored   string // digest that must be stored afterwards
		absent   string // digest that must not be stored afterwards
	}{
		{name: "put new", method: "PUT", path: freshD, body: bytes.NewReader(fresh), wantCode: 201, stored: freshD},
		{name: "put again", method: "PUT", path: freshD, body: bytes.NewReader(fresh), wantCode: 200, stored: freshD},
		{name: "put empty", method: "PUT", path: DigestOf(nil), wantCode: 201, stored: DigestOf(nil)},
		{name: "put chunked", method: "PUT", path: storedD, body: onlyReader{bytes.NewReader(stored)}, wantCode: 200, stored: storedD},
		{name: "put mismatch", method: "PUT", path: absent, body: bytes.NewReader(fresh[:1000]), wantCode: 409, absent: absent},
		{name: "put bad digest", method: "PUT", path: "sha256:1234", body: strings.NewReader("x"), wantCode: 400},
		{name: "put too large", method: "PUT", path: bigD, body: bytes.NewReader(big), wantCode: 413, absent: bigD},
		{name: "put too large chunked", method: "PUT", path: bigD, body: onlyReader{bytes.NewReader(big)}, wantCode: 413, absent: bigD},
		{name: "get", method: "GET", path: storedD, wantCode: 200, wantBody: stored},
		{name: "get range", method: "GET", path: storedD, header: map[string]string{"Range": "bytes=1000-1999"}, wantCode: 206, wantBody: stored[1000:2000]},
		{name: "get empty", method: "GET", path: DigestOf(nil), wantCode: 200, wantBody: []byte{}},
		{name: "get missing", method: "GET", path: absent, wantCode: 404},
		{name: "get bad digest", method: "GET", path: "sha256:" + strings.Repeat("G", 64), wantCode: 400},
		{name: "head", method: "HEAD", path: storedD, wantCode: 200, wantBody: []byte{}},
		{name: "head missing", method: "HEAD", path: absent, wantCode: 404},
		{name: "delete", method: "DELETE", path: storedD, wantCode: 405, stored: storedD},
		{name: "no digest", method: "GET", path: "", wantCode: 404},
		{name: "sub-path", method: "GET", path: storedD + "/x", wantCode: 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(ctx, tc.method, srv.URL+BlobsPath+tc.path, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.wantCode, body)
			}
			switch {
			case tc.wantBody != nil:
				if !bytes.Equal(body, tc.wantBody) {
					t.Fatalf("body of %d bytes, want %d", len(body), len(tc.wantBody))
				}
				if tc.method == "HEAD" {
					if resp.ContentLength != int64(len(stored)) {
						t.Fatalf("HEAD Content-Length %d, want %d", resp.ContentLength, len(stored))
					}
				} else if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(len(tc.wantBody)) {
					t.Fatalf("Content-Length %q, want %d", got, len(tc.wantBody))
				}
				if resp.Header.Get("ETag") != `"`+tc.path+`"` {
					t.Fatalf("ETag %q", resp.Header.Get("ETag"))
				}
			case tc.method == "HEAD":
			case resp.StatusCode < 300:
				var res PutResult
				if err := json.Unmarshal(body, &res); err != nil || res.Digest != tc.path {
					t.Fatalf("answer %s: %v", body, err)
				}
			default:
				var eb struct{ Error string }
				if err := json.Unmarshal(body, &eb); err != nil || eb.Error == "" {
					t.Fatalf("error answer %q is not {\"error\": …}: %v", body, err)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Fatalf("error Content-Type %q", ct)
				}
			}
			if tc.stored != "" {
				if err := s.Verify(ctx, tc.stored); err != nil {
					t.Fatal(err)
				}
			}
			if tc.absent != "" && s.Has(tc.absent) {
				t.Fatalf("%s is stored", tc.absent)
			}
		})
	}
	if files := storeFiles(t, s); len(files) != 3 {
		t.Fatalf("store holds %v, want the 3 blobs put", files)
	}
}
