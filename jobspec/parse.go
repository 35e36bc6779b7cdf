package jobspec

import (
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/trainctl/trainctl/internal/strictyaml"
)

// MaxSpecBytes bounds the size of a YAML job spec.
const MaxSpecBytes = 1 << 20

// ParseFile reads and parses the job spec at path; see Parse.
func ParseFile(path string) (Spec, error) {
	data, err := strictyaml.ReadFile(path, MaxSpecBytes, "job spec")
	if err != nil {
		return Spec{}, err
	}
	return Parse(data, path)
}

// Parse decodes and validates a YAML job spec; filename names it in
// errors. Omitted fields (and fields set to null) take their defaults
// (Defaults). It reports every problem at once, as an Errors of
// *FieldError wrapping ErrInvalid, each naming the file, line and field:
//
//	job.yaml:3: hyperparameter: unknown field (known: name, dataset, …)
//	job.yaml:7: hyperparameters.lr: "fast" is not a number
//	job.yaml:9: resources.ranks: must be in 1..1024, got 0
//	job.yaml: name: required
//
// Unknown fields, duplicate fields, values of the wrong type (a string
// where a number belongs, 1.5 for an integer, "yes" for a boolean) and
// invalid values are all errors; so are YAML syntax errors and more than
// one YAML document. With an error the returned Spec is the zero Spec.
func Parse(data []byte, filename string) (Spec, error) {
	p := strictyaml.New(filename, strconv.IntSize)
	root := p.Root(data, MaxSpecBytes, "a job spec", "empty job spec (want at least name and dataset)")
	if root == nil {
		return Spec{}, fieldErrors(filename, p.Problems())
	}
	s := Defaults()
	if root.Kind != yaml.MappingNode {
		p.Add(root.Line, "", "the job spec must be a mapping of fields (name: …, dataset: …), got %s", strictyaml.Describe(root))
		return Spec{}, fieldErrors(filename, p.Problems())
	}
	decode(p, root, &s)
	for _, e := range s.check() {
		if p.Failed(e.Field) {
			continue // its decode error is reported already
		}
		p.Add(p.LineOf(e.Field), e.Field, "%s", e.Msg)
	}
	if probs := p.Problems(); len(probs) > 0 {
		return Spec{}, fieldErrors(filename, probs)
	}
	return s, nil
}

// fieldErrors turns the problems found in file into Errors.
func fieldErrors(file string, probs []strictyaml.Problem) Errors {
	errs := make(Errors, len(probs))
	for i, pr := range probs {
		errs[i] = &FieldError{File: file, Line: pr.Line, Field: pr.Field, Msg: pr.Msg}
	}
	return errs
}

// decode decodes the top-level mapping root into s.
func decode(p *strictyaml.Parser, root *yaml.Node, s *Spec) {
	h, r := &s.Hyperparameters, &s.Resources
	p.Mapping("", root, []strictyaml.Field{
		{Name: "name", Set: func(path string, n *yaml.Node) { p.Str(path, n, &s.Name) }},
		{Name: "dataset", Set: func(path string, n *yaml.Node) { p.Str(path, n, &s.Dataset) }},
		{Name: "model", Set: func(path string, n *yaml.Node) { p.Str(path, n, &s.Model) }},
		{Name: "hyperparameters", Set: func(path string, n *yaml.Node) {
			p.Mapping(path, n, []strictyaml.Field{
				{Name: "epochs", Set: func(path string, n *yaml.Node) { p.Int(path, n, &h.Epochs) }},
				{Name: "batch", Set: func(path string, n *yaml.Node) { p.Int(path, n, &h.Batch) }},
				{Name: "lr", Set: func(path string, n *yaml.Node) { p.Float(path, n, &h.LR) }},
				{Name: "optimizer", Set: func(path string, n *yaml.Node) { p.Str(path, n, &h.Optimizer) }},
				{Name: "momentum", Set: func(path string, n *yaml.Node) { p.Float(path, n, &h.Momentum) }},
				{Name: "weight_decay", Set: func(path string, n *yaml.Node) { p.Float(path, n, &h.WeightDecay) }},
				{Name: "seed", Set: func(path string, n *yaml.Node) { p.Uint(path, n, &h.Seed) }},
				{Name: "flip", Set: func(path string, n *yaml.Node) { p.Bool(path, n, &h.Flip) }},
			})
		}},
		{Name: "resources", Set: func(path string, n *yaml.Node) {
			p.Mapping(path, n, []strictyaml.Field{
				{Name: "ranks", Set: func(path string, n *yaml.Node) { p.Int(path, n, &r.Ranks) }},
				{Name: "gpus_per_rank", Set: func(path string, n *yaml.Node) { p.Int(path, n, &r.GPUsPerRank) }},
				{Name: "cpus_per_rank", Set: func(path string, n *yaml.Node) { p.Int(path, n, &r.CPUsPerRank) }},
				{Name: "spot", Set: func(path string, n *yaml.Node) { p.Bool(path, n, &r.Spot) }},
			})
		}},
		{Name: "max_restarts", Set: func(path string, n *yaml.Node) { p.Int(path, n, &s.MaxRestarts) }},
		{Name: "checkpoint_every", Set: func(path string, n *yaml.Node) { p.Int(path, n, &s.CheckpointEvery) }},
		{Name: "priority", Set: func(path string, n *yaml.Node) { p.Int(path, n, &s.Priority) }},
		{Name: "max_time", Set: func(path string, n *yaml.Node) { p.Duration(path, n, (*time.Duration)(&s.MaxTime)) }},
	})
}
