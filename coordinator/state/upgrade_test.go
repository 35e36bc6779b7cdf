package state

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/trainctl/trainctl/coordinator/structs"
)

// fixtureLogs are the logs under testdata/v1 (see its README.md).
var fixtureLogs = []string{"lifecycle", "batch", "sweeps"}

// readFixture returns the entries of testdata/v1/NAME.log.jsonl and the
// v1 snapshot of the state they leave.
func readFixture(t testing.TB, name string) ([]*raft.Log, []byte) {
	t.Helper()
	dir := filepath.Join("testdata", "v1")
	f, err := os.Open(filepath.Join(dir, name+".log.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var logs []*raft.Log
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			Index   uint64 `json:"index"`
			Type    uint8  `json:"type"`
			Payload string `json:"payload"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		data := append([]byte{e.Type}, e.Payload...)
		logs = append(logs, &raft.Log{Index: e.Index, Term: 1, Type: raft.LogCommand, Data: data})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	snap, err := os.ReadFile(filepath.Join(dir, name+".state.json"))
	if err != nil {
		t.Fatal(err)
	}
	return logs, snap
}

// haltFails returns an FSM whose Halt fails the test.
func haltFails(t *testing.T) *FSM {
	f := NewFSM(quietLogger())
	f.Halt = func(err error) { t.Fatalf("halted: %v", err) }
	return f
}

// TestReplayV1Log is the rolling-upgrade test: a log written by the v1
// commands replays, through this version's FSM, to the state v1 left, and
// a v1 snapshot of that state restores to it.
//
// Equality is the canonical snapshot encoding (every table sorted by key,
// see Store.Encode), byte for byte: the snapshot format has not changed
// since v1 (the server's specs are shaped in JSON as v1's were). Should a
// later version change the format, compare the replayed state with the v1
// snapshot restored by that version (the second check) instead of with its
// bytes.
func TestReplayV1Log(t *testing.T) {
	for _, name := range fixtureLogs {
		t.Run(name, func(t *testing.T) {
			logs, v1State := readFixture(t, name)
			replayed := haltFails(t)
			for _, l := range logs {
				replayed.Apply(l)
			}
			got := encodeState(t, replayed.State())
			if !bytes.Equal(got, v1State) {
				t.Fatalf("replaying the v1 log gives another state:\n got %s\nwant %s", got, v1State)
			}

			restored := haltFails(t)
			if err := restored.Restore(io.NopCloser(bytes.NewReader(v1State))); err != nil {
				t.Fatalf("restore a v1 snapshot: %v", err)
			}
			if r := encodeState(t, restored.State()); !bytes.Equal(r, got) {
				t.Fatalf("the restored v1 snapshot differs from the replayed log:\n got %s\nwant %s", r, got)
			}

			again := haltFails(t)
			for _, l := range logs {
				again.Apply(l)
			}
			if a := encodeState(t, again.State()); !bytes.Equal(a, got) {
				t.Fatalf("a second replay differs:\n%s\n%s", a, got)
			}
		})
	}
}

// TestV1AndV2CommandsAgree: every v1 spec command of the fixture, decoded
// by its v1 decoder and written again in the current encoding, gives the
// same state: the leader's switch from v1 to v2 entries changes nothing.
func TestV1AndV2CommandsAgree(t *testing.T) {
	upgrade := map[structs.MessageType]struct {
		to     structs.MessageType
		decode func([]byte) (any, error)
	}{
		structs.JobSubmitV1RequestType: {structs.JobSubmitRequestType,
			func(p []byte) (any, error) { return structs.DecodeJobSubmitV1(p) }},
		structs.SweepSubmitV1RequestType: {structs.SweepSubmitRequestType,
			func(p []byte) (any, error) { return structs.DecodeSweepSubmitV1(p) }},
		structs.SweepStepV1RequestType: {structs.SweepStepRequestType,
			func(p []byte) (any, error) { return structs.DecodeSweepStepV1(p) }},
	}
	for _, name := range fixtureLogs {
		t.Run(name, func(t *testing.T) {
			logs, v1State := readFixture(t, name)
			f := haltFails(t)
			n := 0
			for _, l := range logs {
				if u, ok := upgrade[structs.MessageType(l.Data[0])]; ok {
					req, err := u.decode(l.Data[1:])
					if err != nil {
						t.Fatal(err)
					}
					l = entry(t, l.Index, u.to, req)
					n++
				}
				f.Apply(l)
			}
			if n == 0 {
				t.Fatal("the fixture has no v1 spec command")
			}
			if got := encodeState(t, f.State()); !bytes.Equal(got, v1State) {
				t.Fatalf("the v2 encoding of the v1 log gives another state:\n got %s\nwant %s", got, v1State)
			}
		})
	}
}

// TestFixtureHasEveryCommand: the fixture holds every command type v1
// knew, so the replay test covers each decoder of v1.
func TestFixtureHasEveryCommand(t *testing.T) {
	seen := map[structs.MessageType]bool{}
	for _, name := range fixtureLogs {
		logs, _ := readFixture(t, name)
		for _, l := range logs {
			seen[structs.MessageType(l.Data[0])] = true
		}
	}
	for typ := structs.MessageType(1); typ <= 16; typ++ {
		if !seen[typ] {
			t.Errorf("no %s entry in testdata/v1", typ)
		}
	}
}
