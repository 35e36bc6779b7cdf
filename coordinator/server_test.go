package coordinator

import (
	"context"
	"strings"
	"testing"
)

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		tune    func(*Config)
		wantErr string
	}{
		{"no node id", func(c *Config) { c.NodeID = "" }, "node id"},
		{"no data dir", func(c *Config) { c.DataDir = "" }, "data dir"},
		{"bootstrap and join", func(c *Config) { c.Bootstrap, c.Join = true, []string{"127.0.0.1:1"} }, "bootstrap and join"},
		{"raft address not advertisable", func(c *Config) { c.RaftAddr = "0.0.0.0:0" }, "RaftAdvertise"},
		{"http address not advertisable", func(c *Config) { c.HTTPAddr = "0.0.0.0:0" }, "HTTPAdvertise"},
		{"raft timeouts", func(c *Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout }, "LeaderLeaseTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig("c0", t.TempDir())
			cfg.Bootstrap = true
			tt.tune(&cfg)
			s, err := New(context.Background(), cfg)
			if err == nil {
				s.Shutdown()
				t.Fatal("New accepted the config")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New: %v, want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestShutdownTwice(t *testing.T) {
	c := newCluster(t, 1, nil)
	s := c.nodes[0].srv
	if err := s.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(); err != nil {
		t.Fatal(err)
	}
	c.nodes[0].srv = nil
}
