package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
)

// upWait polls cond until it returns nil, failing after timeout.
func upWait(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	upAddrRE   = regexp.MustCompile(`coordinator API http://(\S+) `)
	upGossipRE = regexp.MustCompile(`^127\.0\.0\.1:\d+$`)
)

// TestUp starts `trainctl up` on free ports: it prints its addresses, its
// worker registers with the coordinator, a dataset pushed with `trainctl
// dataset push` is registered and servable, and cancelling the context
// (Ctrl-C) stops it cleanly.
func TestUp(t *testing.T) {
	dir := t.TempDir()
	var out, errOut syncBuffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &errOut
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- app.RunContext(ctx, []string{"trainctl", "--data-dir", dir, "up",
			"--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--flight-addr", "127.0.0.1:0", "--cores", "2"})
	}()
	var addr string
	upWait(t, 20*time.Second, "up to print its address", func() error {
		select {
		case err := <-done:
			t.Fatalf("up returned early: %v\n%s\n%s", err, out.String(), errOut.String())
		default:
		}
		m := upAddrRE.FindStringSubmatch(out.String())
		if m == nil {
			return errors.New("no address yet")
		}
		addr = m[1]
		return nil
	})
	ac := api.New(addr)
	upWait(t, 20*time.Second, "the worker to register", func() error {
		ws, err := ac.Workers(context.Background())
		if err != nil {
			return err
		}
		if len(ws) != 1 || ws[0].ID != "up-worker" || ws[0].Status != api.WorkerAlive || ws[0].Meta.Cores != 2 {
			return fmt.Errorf("workers %+v", ws)
		}
		// Listed at its gossip address: the worker gossips with the
		// coordinator.
		if !upGossipRE.MatchString(ws[0].Addr) {
			return fmt.Errorf("worker address %q, want its gossip address", ws[0].Addr)
		}
		return nil
	})
	if !regexp.MustCompile(`, gossip 127\.0\.0\.1:\d+\)`).MatchString(out.String()) {
		t.Errorf("no gossip address printed:\n%s", out.String())
	}

	// A dataset generated locally and pushed.
	mustCtl2 := func(args ...string) string {
		t.Helper()
		var o, e bytes.Buffer
		a := newApp()
		a.Writer, a.ErrWriter = &o, &e
		if err := a.Run(append([]string{"trainctl", "--data-dir", dir}, args...)); err != nil {
			t.Fatalf("trainctl %s: %v\n%s%s", strings.Join(args, " "), err, o.String(), e.String())
		}
		return o.String()
	}
	mustCtl2("dataset", "gen", "--name", "shapes", "--n", "12", "--size", "16", "--seed", "3")
	got := mustCtl2("dataset", "push", "--coordinator", addr, "shapes@v1")
	if !strings.Contains(got, "as shapes@v1 in the cluster") {
		t.Errorf("push: %q", got)
	}
	vs, err := ac.Datasets(context.Background(), "shapes")
	if err != nil || len(vs) != 1 || vs[0].Blob == "" {
		t.Fatalf("registered versions %+v, %v", vs, err)
	}
	flight, err := ac.DatasetFlight(context.Background(), vs[0].ID)
	if err != nil || flight == "" {
		t.Fatalf("flight address %q, %v", flight, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("up: %v\n%s", err, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("up did not stop within 30s of Ctrl-C")
	}
	if !strings.Contains(out.String(), "trainctl up: stopped") {
		t.Errorf("output:\n%s", out.String())
	}
}

// TestWorkerFlags checks the worker command's flag validation.
func TestWorkerFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"worker", "--id", "bad id"}, `--id "bad id"`},
		{[]string{"worker", "--id", "w1", "--cores", "0"}, "--cores 0"},
		{[]string{"worker", "--id", "w1", "--grace", "0s"}, "--grace 0s"},
		{[]string{"worker", "--id", "w1", "--coordinator", "nohost"}, "--coordinator"},
		{[]string{"worker", "--id", "w1", "extra"}, "takes no arguments"},
		{[]string{"up", "--demo", "--serve-model", "m"}, `--serve-model with --demo: the demo serves its own sweep's best model as "demo"`},
		{[]string{"up", "--cores", "0"}, "--cores 0"},
	} {
		var o, e bytes.Buffer
		a := newApp()
		a.Writer, a.ErrWriter = &o, &e
		err := a.Run(append([]string{"trainctl", "--data-dir", t.TempDir()}, tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("trainctl %s: error %v, want one naming %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}

var (
	upDemoURLRE   = regexp.MustCompile(`served at (http://\S+)/ `)
	upDemoTryRE   = regexp.MustCompile(`--data-binary @(\S+) (\S+:predict)`)
	upDemoSweepRE = regexp.MustCompile(`demo: sweep ([0-9a-f]+):`)
)

// TestUpDemo runs `trainctl up --demo` (on a tiny dataset) end to end: it
// runs the sweep, serves its best model, and the curl line it prints
// works; after Ctrl-C, running it again finds the same sweep and serves at
// once.
func TestUpDemo(t *testing.T) {
	dir := t.TempDir()
	run := func() (sweepID string) {
		var out, errOut syncBuffer
		app := newApp()
		app.Writer, app.ErrWriter = &out, &errOut
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			done <- app.RunContext(ctx, []string{"trainctl", "--data-dir", dir, "up", "--demo",
				"--demo-examples", "48", "--demo-size", "16", "--cores", "2",
				"--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--flight-addr", "127.0.0.1:0",
				"--serve-addr", "127.0.0.1:0"})
		}()
		upWait(t, 3*time.Minute, "the demo to print how to try it", func() error {
			select {
			case err := <-done:
				t.Fatalf("up --demo returned early: %v\n%s\n%s", err, out.String(), errOut.String())
			default:
			}
			if !upDemoTryRE.MatchString(out.String()) {
				return errors.New("no curl line yet")
			}
			return nil
		})
		text := out.String()
		if !regexp.MustCompile(`(?m)^demo: done: best trial \d \(lr=\S+\) val_mean_iou=\S+, model demo-sweep v1$`).MatchString(text) {
			t.Errorf("no done line naming model demo-sweep v1 in:\n%s", text)
		}
		try := upDemoTryRE.FindStringSubmatch(text)
		base := upDemoURLRE.FindStringSubmatch(text)
		id := upDemoSweepRE.FindStringSubmatch(text)
		if base == nil || id == nil {
			t.Fatalf("no URL or sweep id in:\n%s", text)
		}
		img, err := os.ReadFile(try[1])
		if err != nil {
			t.Fatalf("the sample image of the curl line: %v", err)
		}
		req, _ := http.NewRequest(http.MethodPost, try[2], bytes.NewReader(img))
		req.Header.Set("Accept", "image/png")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("X-Model-Version"), "trial") {
			t.Fatalf("predict: %d %q %s", resp.StatusCode, resp.Header.Get("X-Model-Version"), body)
		}
		if m, err := png.Decode(bytes.NewReader(body)); err != nil || m.Bounds().Dx() != 16 {
			t.Fatalf("mask: %v (%v)", err, m)
		}
		for _, path := range []string{"/readyz", "/"} {
			r, err := http.Get(base[1] + path)
			if err != nil || r.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %v %v", path, r, err)
			}
			r.Body.Close()
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("up --demo: %v\n%s", err, errOut.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatal("up --demo did not stop within 30s of Ctrl-C")
		}
		return id[1]
	}
	first := run()
	if again := run(); again != first {
		t.Errorf("second run swept %s, want the first run's sweep %s", again, first)
	}
}

// TestUpDemoFailureStopsUp: when the demo fails on its own (here its
// directory cannot be created), up says why and stops with the error,
// instead of running on silently until Ctrl-C.
func TestUpDemoFailureStopsUp(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "up"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "up", "demo"), []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut syncBuffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &errOut
	done := make(chan error, 1)
	go func() {
		done <- app.RunContext(context.Background(), []string{"trainctl", "--data-dir", dir, "up", "--demo",
			"--demo-examples", "48", "--demo-size", "16", "--cores", "1",
			"--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--flight-addr", "127.0.0.1:0",
			"--serve-addr", "127.0.0.1:0"})
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "up: demo: ") || !strings.Contains(err.Error(), "not a directory") ||
			!strings.Contains(err.Error(), "everything is stopped") {
			t.Fatalf("up --demo with a broken demo directory: %v, want the demo's error\n%s", err, out.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("up --demo kept running after its demo failed:\n%s\n%s", out.String(), errOut.String())
	}
}
