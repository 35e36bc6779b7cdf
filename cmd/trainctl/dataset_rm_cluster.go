package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/dataset"
)

// runClusterDatasetRm is `trainctl dataset rm --coordinator ADDR REF`: it
// removes the version (or, with --all, every version of the name) from the
// cluster registry; the coordinators delete its blob.
func runClusterDatasetRm(c *cli.Context, ref string) error {
	p, cl, err := clusterSetup(c)
	if err != nil {
		return err
	}
	r, err := dataset.ParseRef(ref)
	if err != nil {
		return err
	}
	name, ver, _ := strings.Cut(ref, "@")
	vers := []string{ver}
	if ver == "" {
		vers[0] = "latest"
	}
	if c.Bool("all") {
		if !r.Latest || ver != "" {
			return fmt.Errorf("rm --all takes a NAME, not a version (%q)", ref)
		}
		all, err := cl.Datasets(c.Context, name)
		if err != nil {
			return clusterError(c, err, fmt.Sprintf("dataset %q", name), "see `trainctl dataset ls --coordinator ...`")
		}
		vers = vers[:0]
		for _, v := range all {
			vers = append(vers, fmt.Sprintf("v%d", v.Seq))
		}
	}
	var removed []*api.DatasetVersion
	for _, v := range vers {
		dv, err := cl.RemoveDataset(c.Context, name, v)
		if err != nil {
			return clusterError(c, err, fmt.Sprintf("dataset version %s@%s", name, v), "")
		}
		removed = append(removed, dv)
	}
	if p.JSON() {
		return p.Value(removed)
	}
	for _, v := range removed {
		if _, err := fmt.Fprintf(c.App.Writer, "removed %s@v%d (id %s) from the cluster\n", v.Name, v.Seq, dataset.ShortID(v.ID)); err != nil {
			return err
		}
	}
	return nil
}
