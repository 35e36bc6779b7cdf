package api

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// deadAddr returns an address nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func apiError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(ErrorBody{Error: "test: " + code, Code: code})
}

func TestRetries(t *testing.T) {
	var unavailable, hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/v1/jobs/flaky":
			if unavailable.Add(1) <= 2 {
				apiError(w, http.StatusServiceUnavailable, CodeNoLeader)
				return
			}
			json.NewEncoder(w).Encode(Job{ID: "flaky"})
		case "/v1/jobs/down":
			apiError(w, http.StatusServiceUnavailable, CodeNoLeader)
		default:
			apiError(w, http.StatusNotFound, CodeNotFound)
		}
	}))
	defer srv.Close()

	cfg := DefaultConfig(deadAddr(t), srv.URL)
	cfg.RetryWait = time.Millisecond
	cfg.RetryTimeout = 200 * time.Millisecond
	c := NewWithConfig(cfg)
	ctx := context.Background()

	tests := []struct {
		name     string
		id       string
		wantErr  error
		wantHits int64
	}{
		{"past a dead address and two 503s", "flaky", nil, 3},
		{"404 is not retried", "nope", ErrNotFound, 1},
		{"503 until the retry timeout", "down", ErrNoLeader, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits.Store(0)
			j, err := c.Job(ctx, tt.id)
			if tt.wantErr == nil {
				if err != nil || j.ID != tt.id {
					t.Fatalf("Job = %+v, %v", j, err)
				}
			} else {
				var apiErr *APIError
				if !errors.Is(err, tt.wantErr) || !errors.As(err, &apiErr) {
					t.Fatalf("Job error %v, want %v", err, tt.wantErr)
				}
			}
			if tt.wantHits >= 0 && hits.Load() != tt.wantHits {
				t.Fatalf("%d requests, want %d", hits.Load(), tt.wantHits)
			}
		})
	}
}

func TestContextEndsRetries(t *testing.T) {
	c := New(deadAddr(t))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Status(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Status = %v, want the context's deadline", err)
	}
}

func TestNoAddresses(t *testing.T) {
	if _, err := New().Status(context.Background()); err == nil {
		t.Fatal("want an error")
	}
}
