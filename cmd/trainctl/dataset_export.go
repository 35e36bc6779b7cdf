package main

import (
	"fmt"

	"github.com/trainctl/trainctl/dataset"
	"github.com/urfave/cli/v2"
)

// datasetExportCommand is `trainctl dataset export`: a version written back
// out as image files, to look at, to hand to another tool, or to re-ingest.
func datasetExportCommand() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "write a version's examples as JPEG images and PNG trimaps (Oxford-IIIT Pet layout)",
		ArgsUsage: "NAME[@VER]",
		Description: "Writes images/<id>.jpg and annotations/trimaps/<id>.png (class index + 1, as Pet\n" +
			"trimaps store them) under --out, the layout `dataset ingest --layout oxford-pet` reads.\n\n" +
			"Example:\n  trainctl dataset export shapes@v1 --out /tmp/shapes-pet --limit 50\n" +
			"  trainctl dataset ingest --name shapes-pet --layout oxford-pet /tmp/shapes-pet",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "directory to write into (created if missing; required)"},
			&cli.StringFlag{Name: "split", Usage: "export only this split (train or val); default all"},
			&cli.IntFlag{Name: "limit", Usage: "export at most this many examples (0: all)"},
		},
		Action: func(c *cli.Context) error {
			ref, err := oneArg(c)
			if err != nil {
				return err
			}
			if c.String("out") == "" {
				return fmt.Errorf("export: --out DIR is required (where to write images/ and annotations/)")
			}
			st, err := openStore(c)
			if err != nil {
				return err
			}
			v, m, err := st.Open(ref)
			if err != nil {
				return err
			}
			defer v.Close()
			n, err := dataset.ExportPetLayout(c.Context, v, c.String("out"), dataset.ExportConfig{
				Split: c.String("split"),
				Limit: c.Int("limit"),
			})
			if err != nil {
				return err
			}
			p, err := newPrinter(c)
			if err != nil {
				return err
			}
			out := struct {
				Ref      string `json:"ref"`
				ID       string `json:"id"`
				Examples int    `json:"examples"`
				Dir      string `json:"dir"`
			}{m.Ref(), m.ID, n, c.String("out")}
			if p.JSON() {
				return p.Value(out)
			}
			_, err = fmt.Fprintf(c.App.Writer, "exported %d examples of %s to %s\n", n, m.Ref(), out.Dir)
			return err
		},
	}
}
