package coordinator

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestSetRaftMultiplier(t *testing.T) {
	for _, tc := range []struct {
		m                int
		heartbeat, lease time.Duration
		wantErr          string
	}{
		{m: 1, heartbeat: 300 * time.Millisecond, lease: 300 * time.Millisecond},
		{m: 2, heartbeat: 600 * time.Millisecond, lease: 600 * time.Millisecond},
		{m: 10, heartbeat: 3 * time.Second, lease: 3 * time.Second},
		{m: 0, wantErr: "want 1..10"},
		{m: 11, wantErr: "want 1..10"},
		{m: -1, wantErr: "want 1..10"},
	} {
		cfg := DefaultConfig()
		err := cfg.SetRaftMultiplier(tc.m)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("m=%d: error %v, want one containing %q", tc.m, err, tc.wantErr)
			}
			if cfg.HeartbeatTimeout != BaseHeartbeatTimeout {
				t.Errorf("m=%d: a refused multiplier changed the heartbeat timeout to %v", tc.m, cfg.HeartbeatTimeout)
			}
			continue
		}
		if err != nil {
			t.Fatalf("m=%d: %v", tc.m, err)
		}
		if cfg.HeartbeatTimeout != tc.heartbeat || cfg.ElectionTimeout != tc.heartbeat || cfg.LeaderLeaseTimeout != tc.lease {
			t.Errorf("m=%d: heartbeat %v, election %v, lease %v; want %v, %v, %v", tc.m,
				cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout, tc.heartbeat, tc.heartbeat, tc.lease)
		}
		// What Raft itself accepts.
		rc := raft.DefaultConfig()
		rc.LocalID = "x"
		rc.HeartbeatTimeout, rc.ElectionTimeout = cfg.HeartbeatTimeout, cfg.ElectionTimeout
		rc.LeaderLeaseTimeout, rc.CommitTimeout = cfg.LeaderLeaseTimeout, cfg.CommitTimeout
		if err := raft.ValidateConfig(rc); err != nil {
			t.Errorf("m=%d: raft refuses the timing: %v", tc.m, err)
		}
	}
}

// TestDefaultRaftTiming pins the property the chaos soak depends on: the
// leader's lease is as long as the followers' heartbeat timeout, so a
// leader does not step down while its followers would still follow it.
func TestDefaultRaftTiming(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.LeaderLeaseTimeout != cfg.HeartbeatTimeout {
		t.Errorf("leader lease %v, heartbeat timeout %v: want them equal", cfg.LeaderLeaseTimeout, cfg.HeartbeatTimeout)
	}
	if cfg.ElectionTimeout < cfg.HeartbeatTimeout {
		t.Errorf("election timeout %v below heartbeat timeout %v", cfg.ElectionTimeout, cfg.HeartbeatTimeout)
	}
}
