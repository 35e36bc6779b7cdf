package membership

import (
	"errors"
	"strings"
	"testing"
)

func TestMetaRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		meta NodeMeta
	}{
		{"worker", NodeMeta{Role: RoleWorker, Cores: 16, GPUs: 8, Spot: true, Zone: "eu-west-1a", Version: "v0.3.0", APIAddr: "10.0.0.7:8080"}},
		{"coordinator", NodeMeta{Role: RoleCoordinator, Cores: 4, Version: "v0.3.0", APIAddr: "10.0.0.1:8080", RaftAddr: "10.0.0.1:8300"}},
		{"minimal", NodeMeta{Role: RoleWorker}},
		{"leaving", NodeMeta{Role: RoleWorker, Cores: 2, Leaving: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.meta.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := DecodeMeta(b)
			if err != nil {
				t.Fatalf("DecodeMeta(%s): %v", b, err)
			}
			if got != tt.meta {
				t.Fatalf("round trip = %+v, want %+v", got, tt.meta)
			}
		})
	}
}

func TestMetaErrors(t *testing.T) {
	long := strings.Repeat("z", MaxMetaSize)
	tests := []struct {
		name    string
		encode  *NodeMeta // encode this, or decode raw
		raw     string
		wantErr error
	}{
		{name: "too large", encode: &NodeMeta{Role: RoleWorker, Zone: long}, wantErr: ErrMetaTooLarge},
		// {"r":"worker","z":"…"} is 21 bytes plus the zone; Encode keeps
		// room for the 9-byte leaving flag.
		{name: "fits with the leaving flag", encode: &NodeMeta{Role: RoleWorker, Zone: strings.Repeat("z", MaxMetaSize-21-9)}},
		{name: "no room for the leaving flag", encode: &NodeMeta{Role: RoleWorker, Zone: strings.Repeat("z", MaxMetaSize-21-8)}, wantErr: ErrMetaTooLarge},
		{name: "leaving at the limit", encode: &NodeMeta{Role: RoleWorker, Leaving: true, Zone: strings.Repeat("z", MaxMetaSize-21-9)}},
		{name: "unknown role", encode: &NodeMeta{Role: "janitor"}, wantErr: ErrInvalidMeta},
		{name: "negative gpus", encode: &NodeMeta{Role: RoleWorker, GPUs: -1}, wantErr: ErrInvalidMeta},
		{name: "empty", raw: "", wantErr: ErrInvalidMeta},
		{name: "not json", raw: "\x01\x02", wantErr: ErrInvalidMeta},
		{name: "missing role", raw: `{"c":4}`, wantErr: ErrInvalidMeta},
		{name: "unknown key from a newer member is ignored", raw: `{"r":"worker","c":4,"future":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.encode != nil {
				_, err = tt.encode.Encode()
			} else {
				_, err = DecodeMeta([]byte(tt.raw))
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestMetaFitsTypicalValues guards the compact encoding: a worker with
// realistic, generous values stays well inside the gossip limit.
func TestMetaFitsTypicalValues(t *testing.T) {
	m := NodeMeta{Role: RoleCoordinator, Cores: 256, GPUs: 16, Spot: true,
		Zone: "ap-southeast-2c", Version: "v1.12.3-rc.1+g0123456789ab",
		APIAddr: "[fd00:1234:5678:9abc::1]:18080", RaftAddr: "[fd00:1234:5678:9abc::1]:18300"}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxMetaSize/2 {
		t.Fatalf("encoded meta is %d bytes, more than half the %d-byte limit: %s", len(b), MaxMetaSize, b)
	}
}
