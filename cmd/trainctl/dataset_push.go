package main

import (
	"fmt"
	"strings"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/dataset"

	"github.com/urfave/cli/v2"
)

// datasetPushCommand is `trainctl dataset push`: upload a local version to
// the cluster.
func datasetPushCommand() *cli.Command {
	return &cli.Command{
		Name:         "push",
		Usage:        "upload a local dataset version to the cluster's coordinators",
		ArgsUsage:    "NAME[@VERSION]",
		OnUsageError: globalFlagHint,
		Description: "Uploads the version's Arrow file from --data-dir/datasets to the coordinator\n" +
			"named by --coordinator (env TRAINCTL_COORDINATOR, default the `trainctl up`\n" +
			"address). The leader checks every example, keeps the file in its artifact store,\n" +
			"copies it to a majority of the coordinators and registers the version, so jobs can\n" +
			"name it (spec dataset NAME@vN, numbered in the cluster) and every coordinator can\n" +
			"stream it to workers over Arrow Flight. Pushing the same content again is a no-op.\n\n" +
			"Example:\n" +
			"  trainctl dataset gen --name shapes --n 2500\n" +
			"  trainctl dataset push --coordinator 127.0.0.1:7421 shapes@v1",
		Flags: withClusterFlags(),
		Action: func(c *cli.Context) error {
			ref, err := oneArg(c)
			if err != nil {
				return err
			}
			p, err := newPrinter(c)
			if err != nil {
				return err
			}
			st, err := openStore(c)
			if err != nil {
				return err
			}
			m, err := st.Resolve(ref)
			if err != nil {
				return err
			}
			v, err := pushVersion(c, st, m)
			if err != nil {
				return err
			}
			if p.JSON() {
				return p.Value(v)
			}
			_, err = fmt.Fprintf(p.w, "pushed %s (%s) as %s@v%d in the cluster\n", m.Ref(), m.ID[:12], v.Name, v.Seq)
			return err
		},
	}
}

// pushVersion uploads local version m to the cluster at --coordinator.
func pushVersion(c *cli.Context, st *dataset.Store, m dataset.Manifest) (*api.DatasetVersion, error) {
	api, err := newClusterClient(c)
	if err != nil {
		return nil, err
	}
	v, err := api.UploadDataset(c.Context, m.Name, st.DataPath(m.ID))
	if err != nil {
		return nil, clusterError(c, err, "", "")
	}
	return v, nil
}

// uploadFlags are gen's and ingest's cluster flags. Unlike the other
// cluster commands --coordinator has no default here: without it (or
// TRAINCTL_COORDINATOR) a new version stays local.
func uploadFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    flagCoordinator,
			Usage:   "also push the new version to the cluster at `ADDR[,ADDR...]`, as dataset push does (default: keep it local)",
			EnvVars: []string{"TRAINCTL_COORDINATOR"},
		},
		&cli.DurationFlag{
			Name:  flagTimeout,
			Usage: "with --coordinator: keep retrying unreachable coordinators for this `DURATION`",
			Value: api.DefaultConfig().RetryTimeout,
		},
	}
}

// pushIfAsked pushes version m when --coordinator is set, saying so on
// the table output (JSON output stays the registration alone).
func pushIfAsked(c *cli.Context, st *dataset.Store, m dataset.Manifest) error {
	if strings.TrimSpace(c.String(flagCoordinator)) == "" {
		return nil
	}
	v, err := pushVersion(c, st, m)
	if err != nil {
		return fmt.Errorf("%s was registered locally, but pushing it to the cluster failed (retry with trainctl dataset push %s): %w", m.Ref(), m.Ref(), err)
	}
	p, err := newPrinter(c)
	if err != nil || p.JSON() {
		return err
	}
	_, err = fmt.Fprintf(p.w, "pushed %s to the cluster as %s@v%d\n", m.Ref(), v.Name, v.Seq)
	return err
}
