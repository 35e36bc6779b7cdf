package structs

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/jobspec"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	spec := jobspec.Defaults()
	spec.Name, spec.Dataset = "pets", "pets@v1"
	req := &JobSubmitRequest{JobID: "j1", RequestID: "r1", Spec: NewJobSpec(spec), SubmitTime: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}
	buf, err := Encode(JobSubmitRequestType, req)
	if err != nil {
		t.Fatal(err)
	}
	if MessageType(buf[0]) != JobSubmitRequestType {
		t.Fatalf("type byte %d, want %d", buf[0], JobSubmitRequestType)
	}
	var got JobSubmitRequest
	if err := Decode(buf[1:], &got); err != nil {
		t.Fatal(err)
	}
	if got.JobID != req.JobID || got.RequestID != req.RequestID || got.Spec != req.Spec || !got.SubmitTime.Equal(req.SubmitTime) {
		t.Fatalf("round trip: got %+v, want %+v", got, *req)
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		wantID  string // "" for an undecodable payload
	}{
		{"plain", `{"id":"w1"}`, "w1"},
		{"unknown field is ignored", `{"id":"w1","bogus":{"a":[1]}}`, "w1"},
		{"leading space", " \n{\"id\":\"w1\"}\n", "w1"},
		{"wrong type", `{"id":7}`, ""},
		{"trailing data", `{"id":"w1"} {"id":"w2"}`, ""},
		{"trailing garbage", `{"id":"w1"}x`, ""},
		{"not json", `{`, ""},
		{"null", `null`, ""},
		{"array", `[]`, ""},
		{"empty", ``, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := DecodeAs[WorkerDrainRequest]([]byte(tt.payload))
			if tt.wantID == "" {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Decode(%q) = %+v, %v; want ErrInvalid", tt.payload, req, err)
				}
				return
			}
			if err != nil || req.ID != tt.wantID {
				t.Fatalf("Decode(%q) = %+v, %v; want id %s", tt.payload, req, err, tt.wantID)
			}
		})
	}
}

// TestErrorsAreTheAPIs checks that the server's sentinels are the API's,
// so that what the server returns maps to a code and back.
func TestErrorsAreTheAPIs(t *testing.T) {
	for _, sentinel := range []error{ErrNotFound, ErrInvalid, ErrConflict, ErrNotLeader, ErrNoLeader, ErrTooLarge} {
		wrapped := fmt.Errorf("context: %w", sentinel)
		if got := api.ErrorForCode(api.Code(wrapped)); got != sentinel {
			t.Errorf("api.ErrorForCode(api.Code(%v)) = %v", wrapped, got)
		}
	}
	if api.Code(fmt.Errorf("halt: %w", ErrUnknownCommand)) != api.CodeInternal {
		t.Error("the FSM's own ErrUnknownCommand should reach the API as internal")
	}
}

func TestMessageTypeString(t *testing.T) {
	if got := (JobSubmitRequestType | IgnoreUnknownTypeFlag).String(); got != "JobSubmit" {
		t.Errorf("String() = %q", got)
	}
	if got := JobPlaceBatchRequestType.String(); got != "JobPlaceBatch" || JobPlaceBatchRequestType != 12 {
		t.Errorf("JobPlaceBatchRequestType = %d %q", uint8(JobPlaceBatchRequestType), got)
	}
	if got := JobSubmitV1RequestType.String(); got != "JobSubmit.v1" || JobSubmitV1RequestType != 1 {
		t.Errorf("JobSubmitV1RequestType = %d %q", uint8(JobSubmitV1RequestType), got)
	}
	if got := MessageType(99).String(); got != "MessageType(99)" {
		t.Errorf("String() = %q", got)
	}
}
