package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
)

// TestGossipFlags checks the validation of the gossip flags of the
// coordinator and worker commands.
func TestGossipFlags(t *testing.T) {
	coord := []string{"coordinator", "--node-id", "n1", "--bootstrap", "--raft-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}
	work := []string{"worker", "--id", "w1", "--coordinator", "127.0.0.1:1"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append(coord, "--gossip-addr", "nope"), `coordinator: --gossip-addr: "nope" is not host:port`},
		{append(coord, "--gossip-addr", "localhost:7946"), `--gossip-addr "localhost:7946": give an IP address`},
		{append(coord, "--gossip-addr", "127.0.0.1:99999"), `port "99999" is not a number in 0..65535`},
		{append(coord, "--gossip-join", "127.0.0.1:7946"), "--gossip-join need --gossip-addr"},
		{append(coord, "--gossip-addr", "127.0.0.1:0", "--gossip-join", "127.0.0.1"), `--gossip-join: "127.0.0.1" is not host:port`},
		{append(coord, "--gossip-addr", "127.0.0.1:0", "--gossip-join", ":7946"), `--gossip-join: ":7946": want the host and port`},
		{append(coord, "--gossip-addr", "0.0.0.0:7946", "--gossip-advertise", "0.0.0.0:7946"), `--gossip-advertise "0.0.0.0:7946": give the IP address and port`},
		{append(work, "--gossip-addr", "127.0.0.1:0"), "worker: --gossip-addr needs --gossip-join ADDR"},
		{append(work, "--gossip-join", "127.0.0.1:7946"), "worker: --gossip-advertise and --gossip-join need --gossip-addr"},
		{append(work, "--gossip-addr", "127.0.0.1:0", "--gossip-join", "127.0.0.1:0"), `--gossip-join: "127.0.0.1:0": want the host and port`},
		{append(work, "--gossip-addr", "host.example:0", "--gossip-join", "127.0.0.1:7946"), "give an IP address"},
	} {
		var o, e bytes.Buffer
		a := newApp()
		a.Writer, a.ErrWriter = &o, &e
		err := a.Run(append([]string{"trainctl", "--data-dir", t.TempDir()}, tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("trainctl %s: error %v, want one containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	for _, cmd := range []string{"coordinator", "worker"} {
		out, _, err := ctl(t, cmd, "--help")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Gossip (optional)", "--gossip-addr", "--gossip-join", "seen leaving at once", "only when its lease runs out"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s --help lacks %q", cmd, want)
			}
		}
	}
}

// TestGossipCommands: `trainctl coordinator --gossip-addr` and `trainctl
// worker --gossip-addr --gossip-join` in one process: the worker is listed
// at its gossip address, and its stop (Ctrl-C) is a graceful leave that
// the coordinator records at once, long before the default 15 s lease.
func TestGossipCommands(t *testing.T) {
	dataDir := t.TempDir()
	cctx, ccancel := context.WithCancel(context.Background())
	defer ccancel()
	cout := &syncBuffer{written: make(chan struct{}, 1)}
	capp := newApp()
	capp.Writer, capp.ErrWriter = cout, cout
	cdone := make(chan error, 1)
	go func() {
		cdone <- capp.RunContext(cctx, []string{"trainctl", "--data-dir", dataDir, "coordinator", "--node-id", "n1", "--bootstrap",
			"--raft-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--flight-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0"})
	}()
	re := regexp.MustCompile(`msg="serving; Ctrl-C to stop".* http=(127\.0\.0\.1:\d+).* gossip=(127\.0\.0\.1:\d+)`)
	m := waitOutput(t, cout, cdone, re, "the serving line with a gossip address")
	httpAddr, gossipAddr := m[1], m[2]
	defer func() {
		ccancel()
		if err := waitDone(t, cdone, "coordinator"); err != nil {
			t.Errorf("coordinator exit: %v", err)
		}
	}()

	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	wout := &syncBuffer{written: make(chan struct{}, 1)}
	wapp := newApp()
	wapp.Writer, wapp.ErrWriter = wout, wout
	wdone := make(chan error, 1)
	go func() {
		wdone <- wapp.RunContext(wctx, []string{"trainctl", "--data-dir", dataDir, "worker", "--id", "gw1", "--cores", "2", "--coordinator", httpAddr,
			"--gossip-addr", "127.0.0.1:0", "--gossip-join", gossipAddr})
	}()
	ac := api.New(httpAddr)
	joined := regexp.MustCompile(`msg="joined gossip".* addr=(127\.0\.0\.1:\d+)`)
	workerGossip := waitOutput(t, wout, wdone, joined, "the worker's gossip join")[1]
	waitUntil(t, 20*time.Second, "gw1 registered at its gossip address", func() error {
		ws, err := ac.Workers(context.Background())
		if err != nil {
			return err
		}
		if len(ws) != 1 || ws[0].ID != "gw1" || ws[0].Status != api.WorkerAlive || ws[0].Meta.Cores != 2 || ws[0].Addr != workerGossip {
			return fmt.Errorf("workers %+v, want gw1 alive with 2 cores at %s", ws, workerGossip)
		}
		return nil
	})

	start := time.Now()
	wcancel()
	if err := waitDone(t, wdone, "worker"); err != nil {
		t.Fatalf("worker exit: %v\n%s", err, wout.String())
	}
	waitUntil(t, 10*time.Second, "gw1 left", func() error {
		ws, err := ac.Workers(context.Background())
		if err != nil {
			return err
		}
		if len(ws) != 1 || ws[0].Status != api.WorkerLeft {
			return fmt.Errorf("workers %+v, want gw1 left", ws)
		}
		return nil
	})
	t.Logf("worker Ctrl-C to WorkerDown(left): %v", time.Since(start))
	if !strings.Contains(wout.String(), `msg="left gossip"`) {
		t.Errorf("the worker logged no leave:\n%s", wout.String())
	}
}
