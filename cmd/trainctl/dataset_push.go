package main

import (
	"fmt"

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
			ref, err := oneClusterArg(c)
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
			api, err := newClusterClient(c)
			if err != nil {
				return err
			}
			v, err := api.UploadDataset(c.Context, m.Name, st.DataPath(m.ID))
			if err != nil {
				return clusterError(c, err, "", "")
			}
			if p.JSON() {
				return p.Value(v)
			}
			_, err = fmt.Fprintf(p.w, "pushed %s (%s) as %s@v%d in the cluster\n", m.Ref(), m.ID[:12], v.Name, v.Seq)
			return err
		},
	}
}
