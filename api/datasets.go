package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// FlightEndpoint is the answer of GET /v1/datasets/flight: where the
// answering coordinator serves dataset versions over Arrow Flight.
type FlightEndpoint struct {
	// Addr is the host:port of the coordinator's dataset Flight server.
	Addr string `json:"addr"`
}

// DatasetFlight returns the Arrow Flight address of a coordinator that can
// serve dataset version id now (id empty: any coordinator's address). A
// coordinator that does not hold the version yet answers 503 and the
// client tries the others, then again, until Config.RetryTimeout.
func (c *Client) DatasetFlight(ctx context.Context, id string) (string, error) {
	path := "/v1/datasets/flight"
	if id != "" {
		path += "?id=" + url.QueryEscape(id)
	}
	var out FlightEndpoint
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return "", err
	}
	return out.Addr, nil
}

// UploadDataset uploads the dataset version file at path (a version's
// Arrow file, as dataset.Store.DataPath names it) as a version of name:
// POST /v1/datasets/upload?name=NAME with the file as the body. The leader
// imports it (checking every example), stores it in the artifact store,
// copies it to a majority of the coordinators and registers the version;
// uploading the same content again returns the existing entry. Like every
// write it retries on other coordinators while the cluster has no leader,
// re-reading the file each time; the request itself is bounded by ctx
// only, not by the client's per-request timeout, since a version may be
// large.
func (c *Client) UploadDataset(ctx context.Context, name, path string) (*DatasetVersion, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("upload dataset %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("upload dataset %s: %w", name, err)
	}
	if len(c.bases) == 0 {
		return nil, errors.New("coordinator client: no addresses")
	}
	hc := &http.Client{Transport: c.http.Transport} // no overall timeout: ctx bounds it
	route := "/v1/datasets/upload?name=" + url.QueryEscape(name)
	deadline := time.Now().Add(c.cfg.RetryTimeout)
	wait := c.cfg.RetryWait
	start := c.next.Load()
	for attempt := int64(0); ; attempt++ {
		i := (start + attempt) % int64(len(c.bases))
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("upload dataset %s: %w", name, err)
		}
		var v DatasetVersion
		err := uploadOnce(ctx, hc, c.bases[i]+route, f, fi.Size(), &v)
		if err == nil {
			c.next.Store(i)
			return &v, nil
		}
		if !retryable(err) || ctx.Err() != nil {
			return nil, fmt.Errorf("upload dataset %s: %w", name, err)
		}
		if (attempt+1)%int64(len(c.bases)) != 0 {
			continue
		}
		if !time.Now().Add(wait).Before(deadline) {
			return nil, fmt.Errorf("upload dataset %s: giving up after %d attempts: %w", name, attempt+1, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("upload dataset %s: %w (last error: %w)", name, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, c.cfg.MaxRetryWait)
	}
}

// uploadOnce sends the file to one coordinator and decodes its answer
// into out.
func uploadOnce(ctx context.Context, hc *http.Client, u string, body io.Reader, size int64, out *DatasetVersion) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, io.NopCloser(body))
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/vnd.apache.arrow.file")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
			eb = ErrorBody{Error: strings.TrimSpace(string(data)), Code: CodeInternal}
		}
		return &APIError{Status: resp.StatusCode, Code: eb.Code, Message: eb.Error}
	}
	return json.Unmarshal(data, out)
}
