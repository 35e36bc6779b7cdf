package state

import (
	"bytes"
	"io"
	"testing"

	"github.com/hashicorp/raft"
)

// FuzzApply feeds arbitrary bytes to the FSM as one log entry, on top of
// the state of the v1 sweep fixture: Apply either applies the entry (a
// response, perhaps an error) or calls Halt; it never panics otherwise. An
// entry that halts or is answered with an error leaves the state as it
// was; one that applies leaves a state that snapshots and restores to
// itself. The seeds are every entry of the v1 fixture.
func FuzzApply(f *testing.F) {
	var base []byte
	for _, name := range fixtureLogs {
		logs, snap := readFixture(f, name)
		for _, l := range logs {
			f.Add(l.Data)
		}
		if name == "sweeps" {
			base = snap
		}
	}
	f.Add([]byte{})
	f.Add([]byte{99 | 128})
	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := NewFSM(quietLogger())
		if err := fsm.Restore(io.NopCloser(bytes.NewReader(base))); err != nil {
			t.Fatal(err)
		}
		halted := false
		fsm.Halt = func(error) { halted = true }
		before := encodeState(t, fsm.State())
		resp := fsm.Apply(&raft.Log{Index: fsm.State().Index() + 1, Term: 2, Type: raft.LogCommand, Data: data})
		after := encodeState(t, fsm.State())
		if _, rejected := resp.(error); halted || rejected {
			if !bytes.Equal(before, after) {
				t.Fatalf("a rejected entry (halted %v, %v) changed the state", halted, resp)
			}
			return
		}
		restored := NewFSM(quietLogger())
		if err := restored.Restore(io.NopCloser(bytes.NewReader(after))); err != nil {
			t.Fatalf("the state after %q does not restore: %v", data, err)
		}
		if got := encodeState(t, restored.State()); !bytes.Equal(got, after) {
			t.Fatalf("the state after %q does not survive a snapshot:\n%s\n%s", data, got, after)
		}
	})
}
