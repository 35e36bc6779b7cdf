package state

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/trainctl/trainctl/coordinator/structs"
)

// undecodable are entries no version of the FSM can apply.
var undecodable = []struct {
	name string
	data []byte
}{
	{"empty", nil},
	{"unknown type", []byte{99, '{', '}'}},
	{"type only", []byte{byte(structs.WorkerDrainRequestType)}},
	{"not JSON", append([]byte{byte(structs.JobSubmitRequestType)}, `{"job_id":`...)},
	{"not an object", append([]byte{byte(structs.WorkerDrainRequestType)}, `"w1"`...)},
	{"wrong type", append([]byte{byte(structs.WorkerDrainRequestType)}, `{"id":7}`...)},
	{"trailing garbage", append([]byte{byte(structs.WorkerDrainRequestType)}, `{"id":"w1"}}`...)},
	{"wrong type, v1 spec", append([]byte{byte(structs.JobSubmitV1RequestType)}, `{"job_id":"j9","spec":{"priority":"high"}}`...)},
	{"wrong type, v1 sweep step", append([]byte{byte(structs.SweepStepV1RequestType)}, `{"sweep_id":"s1","new_trials":[{"job":{"max_time":"soon"}}]}`...)},
	{"wrong type, ignorable known type", append([]byte{byte(structs.ServerRegisterRequestType | structs.IgnoreUnknownTypeFlag)}, `{"id":1}`...)},
}

// TestUndecodableEntryHalts: an entry the FSM cannot decode is logged at
// error level with its index and type, calls Halt, and changes nothing.
func TestUndecodableEntryHalts(t *testing.T) {
	for _, tt := range undecodable {
		t.Run(tt.name, func(t *testing.T) {
			var logBuf bytes.Buffer
			f := NewFSM(slog.New(slog.NewTextHandler(&logBuf, nil)))
			runLog(t, f, lifecycle()[:4], false)
			var halts []error
			f.Halt = func(err error) { halts = append(halts, err) }
			before := encodeState(t, f.State())
			resp := f.Apply(&raft.Log{Index: 77, Term: 3, Type: raft.LogCommand, Data: tt.data})
			if len(halts) != 1 {
				t.Fatalf("Halt called %d times, want once", len(halts))
			}
			if err, _ := resp.(error); !errors.Is(err, halts[0]) {
				t.Fatalf("response %v, want the halt's error", resp)
			}
			if msg := halts[0].Error(); !strings.Contains(msg, "log entry 77 (term 3, type ") {
				t.Fatalf("halt error %q does not name the entry", msg)
			}
			if after := encodeState(t, f.State()); !bytes.Equal(before, after) {
				t.Fatalf("an undecodable entry changed the state:\n%s\n%s", before, after)
			}
			if l := logBuf.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "index=77") || !strings.Contains(l, "type=") {
				t.Fatalf("log %q lacks an error naming the entry", l)
			}
		})
	}
}

// TestHaltPanicsByDefault: without a Halt of its own, the FSM stops the
// node (raft runs Apply on its FSM goroutine; the panic ends the process)
// rather than skipping the entry.
func TestHaltPanicsByDefault(t *testing.T) {
	f := NewFSM(quietLogger())
	defer func() {
		r := recover()
		err, ok := r.(error)
		if !ok || !errors.Is(err, structs.ErrUnknownCommand) || !strings.Contains(err.Error(), "log entry 5") {
			t.Fatalf("recovered %v, want the halt's error", r)
		}
		if f.State().Index() != 0 {
			t.Fatal("the state moved")
		}
	}()
	f.Apply(&raft.Log{Index: 5, Term: 1, Type: raft.LogCommand, Data: []byte{99, '{', '}'}})
	t.Fatal("Apply returned")
}

// TestUnknownFieldsAreIgnored: a newer leader's additive field, at any
// depth, does not stop an older follower: the entry applies as without it.
func TestUnknownFieldsAreIgnored(t *testing.T) {
	plain, extra := testFSM(), haltFails(t)
	for i, st := range lifecycle()[:4] {
		l := entry(t, uint64(i+1), st.typ, st.req)
		plain.Apply(l)
		// Add a top-level and a nested field to the payload.
		p := l.Data[1:]
		p = bytes.Replace(p, []byte(`{`), []byte(`{"added_in_v9":{"x":[1,2]},`), 1)
		p = bytes.Replace(p, []byte(`"meta":{`), []byte(`"meta":{"rack":"r1",`), 1)
		extra.Apply(&raft.Log{Index: l.Index, Term: 1, Type: raft.LogCommand, Data: append([]byte{l.Data[0]}, p...)})
	}
	if a, b := encodeState(t, plain.State()), encodeState(t, extra.State()); !bytes.Equal(a, b) {
		t.Fatalf("states differ:\n%s\n%s", a, b)
	}
	if plain.State().Index() != 4 {
		t.Fatalf("index %d, want 4", plain.State().Index())
	}
}
