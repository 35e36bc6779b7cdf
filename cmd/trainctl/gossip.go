package main

import (
	"fmt"
	"net"

	"github.com/urfave/cli/v2"

	"github.com/trainctl/trainctl/membership"
)

// gossipHelp explains the gossip flags in the descriptions of the
// coordinator and worker commands.
const gossipHelp = "Gossip (optional): with --gossip-addr the process also joins the cluster's memberlist\n" +
	"gossip (UDP and TCP on that port), coordinators and workers alike; a worker joins\n" +
	"through --gossip-join, the gossip addresses of coordinators (or of any member). Its\n" +
	"node metadata carries the worker's cores, GPUs, spot flag, zone and version. What it\n" +
	"adds: a worker that stops gracefully (SIGTERM, after handing its attempts back) is\n" +
	"seen leaving at once, and the leader marks it left without waiting for its lease.\n" +
	"A worker that dies is still marked dead only when its lease runs out (gossip noticing\n" +
	"the failure does not shorten it), and HTTP heartbeats keep the lease either way.\n" +
	"Without --gossip-addr there is no gossip: leases and heartbeats alone decide.\n"

// gossipFlags are the gossip flags of the coordinator and worker commands.
func gossipFlags(joinUsage string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "gossip-addr", Usage: "join the cluster's gossip, listening (UDP and TCP) on `IP:PORT` (port 0: any free port; default: no gossip)", EnvVars: []string{"TRAINCTL_GOSSIP_ADDR"}},
		&cli.StringFlag{Name: "gossip-advertise", Usage: "`IP:PORT` other members dial for gossip (default: the listening address; on 0.0.0.0, a private IP of this machine)"},
		&cli.StringFlag{Name: "gossip-join", Usage: joinUsage, EnvVars: []string{"TRAINCTL_GOSSIP_JOIN"}},
	}
}

// gossipConfig builds the membership configuration from the gossip flags,
// or nil when --gossip-addr is not given. cmd names the command in errors;
// needJoin makes --gossip-join required with --gossip-addr.
func gossipConfig(c *cli.Context, cmd string, needJoin bool) (*membership.Config, error) {
	addr, adv, join := c.String("gossip-addr"), c.String("gossip-advertise"), c.String("gossip-join")
	if addr == "" {
		if adv != "" || join != "" {
			return nil, fmt.Errorf("%s: --gossip-advertise and --gossip-join need --gossip-addr IP:PORT (where this process listens for gossip)", cmd)
		}
		return nil, nil
	}
	cfg := membership.DefaultConfig()
	host, port, err := splitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%s: --gossip-addr: %w", cmd, err)
	}
	if net.ParseIP(host) == nil {
		return nil, fmt.Errorf("%s: --gossip-addr %q: give an IP address to listen on (like 127.0.0.1 or 0.0.0.0), not a host name", cmd, addr)
	}
	cfg.BindAddr, cfg.BindPort = host, port
	if adv != "" {
		host, port, err := splitHostPort(adv)
		if err != nil {
			return nil, fmt.Errorf("%s: --gossip-advertise: %w", cmd, err)
		}
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() || port == 0 {
			return nil, fmt.Errorf("%s: --gossip-advertise %q: give the IP address and port other members reach this one at", cmd, adv)
		}
		cfg.AdvertiseAddr, cfg.AdvertisePort = host, port
	}
	if join == "" {
		if needJoin {
			return nil, fmt.Errorf("%s: --gossip-addr needs --gossip-join ADDR[,ADDR...], the gossip addresses of the coordinators", cmd)
		}
		return &cfg, nil
	}
	addrs, err := splitAddrs(join)
	if err != nil {
		return nil, fmt.Errorf("%s: --gossip-join %q: %w", cmd, join, err)
	}
	for _, a := range addrs {
		h, p, err := splitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("%s: --gossip-join: %w", cmd, err)
		}
		if h == "" || p == 0 {
			return nil, fmt.Errorf("%s: --gossip-join: %q: want the host and port of a member's gossip (its --gossip-addr)", cmd, a)
		}
	}
	cfg.Join = addrs
	return &cfg, nil
}
