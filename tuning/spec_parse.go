package tuning

import (
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/trainctl/trainctl/internal/strictyaml"
	"github.com/trainctl/trainctl/jobspec"
)

// MaxSpecBytes bounds the size of a YAML sweep spec.
const MaxSpecBytes = jobspec.MaxSpecBytes

// ParseFile reads and parses the sweep spec at path; see Parse.
func ParseFile(path string) (Spec, error) {
	data, err := strictyaml.ReadFile(path, MaxSpecBytes, "sweep spec")
	if err != nil {
		return Spec{}, err
	}
	return Parse(data, path)
}

// Parse decodes and validates a YAML sweep spec; filename names it in
// errors. It reports every problem at once as a jobspec.Errors of
// *jobspec.FieldError (wrapping jobspec.ErrInvalid), each naming the file,
// line and field, exactly as job specs do:
//
//	sweep.yaml:4: job.hyperparameters.lr: "fast" is not a number
//	sweep.yaml:12: search_space.lr: loguniform needs low > 0, got 0
//	sweep.yaml:20: scheduler.name: "bohb" is not one of fifo, asha, hyperband, median
//
// The job sub-tree is parsed by jobspec.Parse, so it accepts exactly what
// `trainctl submit` does, with its defaults; its errors carry the field
// prefix job. and lines of this file. Omitted fields take their defaults
// (Defaults). Unknown fields, duplicates, wrong types and invalid values
// are errors. With an error the returned Spec is the zero Spec.
func Parse(data []byte, filename string) (Spec, error) {
	p := &sparser{strictyaml.New(filename, strconv.IntSize)}
	root := p.Root(data, MaxSpecBytes, "a sweep spec", "empty sweep spec")
	if root == nil {
		return Spec{}, fieldErrors(filename, p.Problems())
	}
	if root.Kind != yaml.MappingNode {
		p.Add(root.Line, "", "the sweep spec must be a mapping of fields (name: …, job: …), got %s", strictyaml.Describe(root))
		return Spec{}, fieldErrors(filename, p.Problems())
	}
	s := Defaults()
	jobSeen := false
	p.spec(root, &s, &jobSeen)
	if !jobSeen && !p.Failed("job") {
		p.Add(0, "job", "required (a job spec: name, dataset, hyperparameters, …)")
	}
	if s.Budget.Max == 0 && s.Budget.Unit == UnitEpochs && !p.Failed("budget.max") {
		s.Budget.Max = s.Job.Hyperparameters.Epochs
	}
	slices.SortStableFunc(s.SearchSpace.Params, func(a, b Param) int { return strings.Compare(a.Name, b.Name) })
	for _, e := range s.check() {
		if p.Failed(e.Field) || p.FailedUnder(e.Field) {
			continue // its decode error is reported already
		}
		p.Add(p.LineOf(e.Field), e.Field, "%s", e.Msg)
	}
	if probs := p.Problems(); len(probs) > 0 {
		return Spec{}, fieldErrors(filename, probs)
	}
	return s, nil
}

// fieldErrors turns the problems found in file into jobspec.Errors, the
// error type of job and sweep specs alike.
func fieldErrors(file string, probs []strictyaml.Problem) jobspec.Errors {
	errs := make(jobspec.Errors, len(probs))
	for i, pr := range probs {
		errs[i] = &jobspec.FieldError{File: file, Line: pr.Line, Field: pr.Field, Msg: pr.Msg}
	}
	return errs
}

// sparser decodes a sweep spec's YAML node tree with the strict-YAML
// machinery that jobspec uses, adding the sweep-only parts: the search
// space, tpe- and scheduler-only fields and the nested job spec.
type sparser struct {
	*strictyaml.Parser
}

// spec decodes the top-level mapping root into s, setting *jobSeen when
// it has a job field.
func (p *sparser) spec(root *yaml.Node, s *Spec, jobSeen *bool) {
	sc, b, ss := &s.Scheduler, &s.Budget, &s.Searcher
	p.Mapping("", root, []strictyaml.Field{
		{Name: "name", Set: func(path string, n *yaml.Node) { p.Str(path, n, &s.Name) }},
		{Name: "job", Set: func(path string, n *yaml.Node) { *jobSeen = true; p.job(path, n, &s.Job) }},
		{Name: "search_space", Set: func(path string, n *yaml.Node) { p.space(path, n, &s.SearchSpace) }},
		{Name: "objective", Set: func(path string, n *yaml.Node) {
			p.Mapping(path, n, []strictyaml.Field{
				{Name: "metric", Set: func(path string, n *yaml.Node) { p.Str(path, n, &s.Objective.Metric) }},
				{Name: "mode", Set: func(path string, n *yaml.Node) {
					var m string
					p.Str(path, n, &m)
					s.Objective.Mode = Mode(m)
				}},
			})
		}},
		{Name: "searcher", Set: func(path string, n *yaml.Node) {
			name := scalarField(n, "name")
			tpeOnly := func(set func(path string, n *yaml.Node)) func(path string, n *yaml.Node) {
				return func(path string, n *yaml.Node) {
					if name != SearcherTPE {
						p.Fail(path, "applies to searcher tpe only")
						return
					}
					set(path, n)
				}
			}
			p.Mapping(path, n, []strictyaml.Field{
				{Name: "name", Set: func(path string, n *yaml.Node) { p.Str(path, n, &ss.Name) }},
				{Name: "n_startup", Set: tpeOnly(func(path string, n *yaml.Node) { p.Int(path, n, &ss.TPE.NStartup) })},
				{Name: "n_candidates", Set: tpeOnly(func(path string, n *yaml.Node) { p.Int(path, n, &ss.TPE.NCandidates) })},
				{Name: "gamma", Set: tpeOnly(func(path string, n *yaml.Node) { p.Float(path, n, &ss.TPE.Gamma) })},
			})
		}},
		{Name: "scheduler", Set: func(path string, n *yaml.Node) {
			name := scalarField(n, "name")
			only := func(names []string, set func(path string, n *yaml.Node)) func(path string, n *yaml.Node) {
				return func(path string, n *yaml.Node) {
					if !slices.Contains(names, name) {
						p.Fail(path, "applies to scheduler %s only", strings.Join(names, ", "))
						return
					}
					set(path, n)
				}
			}
			p.Mapping(path, n, []strictyaml.Field{
				{Name: "name", Set: func(path string, n *yaml.Node) { p.Str(path, n, &sc.Name) }},
				{Name: "reduction_factor", Set: only([]string{SchedulerASHA, SchedulerHyperband},
					func(path string, n *yaml.Node) { p.Int(path, n, &sc.ReductionFactor) })},
				{Name: "grace_period", Set: only([]string{SchedulerASHA, SchedulerHyperband, SchedulerMedian},
					func(path string, n *yaml.Node) { p.Int(path, n, &sc.GracePeriod) })},
				{Name: "min_trials", Set: only([]string{SchedulerMedian},
					func(path string, n *yaml.Node) { p.Int(path, n, &sc.MinTrials) })},
			})
		}},
		{Name: "max_trials", Set: func(path string, n *yaml.Node) { p.Int(path, n, &s.MaxTrials) }},
		{Name: "max_concurrent", Set: func(path string, n *yaml.Node) { p.Int(path, n, &s.MaxConcurrent) }},
		{Name: "budget", Set: func(path string, n *yaml.Node) {
			p.Mapping(path, n, []strictyaml.Field{
				{Name: "unit", Set: func(path string, n *yaml.Node) { p.Str(path, n, &b.Unit) }},
				{Name: "min", Set: func(path string, n *yaml.Node) { p.Int(path, n, &b.Min) }},
				{Name: "max", Set: func(path string, n *yaml.Node) { p.Int(path, n, &b.Max) }},
			})
		}},
		{Name: "seed", Set: func(path string, n *yaml.Node) { p.Uint(path, n, &s.Seed) }},
	})
}

// scalarField is the value of the last key of the mapping n, as written,
// aliases resolved, or "" (n is not a mapping, has no such key or its
// value is not a scalar): a peek at a field that decides which other
// fields apply, before the mapping is decoded.
func scalarField(n *yaml.Node, key string) string {
	var v string
	if n = strictyaml.Resolve(n); n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], strictyaml.Resolve(n.Content[i+1])
			if k.Kind == yaml.ScalarNode && k.Value == key {
				v = ""
				if val.Kind == yaml.ScalarNode {
					v = val.Value
				}
			}
		}
	}
	return v
}

// space decodes search_space: a mapping of at most MaxParams parameter
// names to their distributions.
func (p *sparser) space(path string, n *yaml.Node, dst *Space) {
	if n.Kind != yaml.MappingNode {
		p.TypeError(path, n, "a mapping of parameter names to {type: …}")
		return
	}
	if k := len(n.Content) / 2; k > MaxParams {
		p.Fail(path, "has %d parameters, the limit is %d", k, MaxParams)
		return
	}
	p.Entries(path, n, "parameter", func(fp string, k, v *yaml.Node) {
		p.SetLine(fp, k.Line)
		v = strictyaml.Resolve(v)
		if strictyaml.IsNull(v) {
			p.Fail(fp, "needs a distribution ({type: uniform|loguniform|int|choice, …})")
			return
		}
		prm := Param{Name: k.Value}
		ok := p.Count()
		var typ string
		p.Mapping(fp, v, []strictyaml.Field{
			{Name: "type", Set: func(path string, n *yaml.Node) { p.Str(path, n, &typ) }},
			{Name: "low", Set: func(path string, n *yaml.Node) { p.Float(path, n, &prm.Low) }},
			{Name: "high", Set: func(path string, n *yaml.Node) { p.Float(path, n, &prm.High) }},
			{Name: "log", Set: func(path string, n *yaml.Node) { p.Bool(path, n, &prm.Log) }},
			{Name: "values", Set: func(path string, n *yaml.Node) { p.values(path, n, &prm.Values) }},
			{Name: "grid_points", Set: func(path string, n *yaml.Node) { p.Int(path, n, &prm.GridPoints) }},
		})
		prm.Type = ParamType(typ)
		if p.Count() > ok {
			p.MarkFailed(fp) // report the decode errors, not their consequences
		}
		dst.Params = append(dst.Params, prm)
	})
}

// values decodes a list of at most MaxChoices scalars: numbers, strings or
// booleans.
func (p *sparser) values(path string, n *yaml.Node, dst *[]Value) {
	if n.Kind != yaml.SequenceNode {
		p.TypeError(path, n, "a list of values")
		return
	}
	if len(n.Content) > MaxChoices {
		p.Fail(path, "has %d values, the limit is %d", len(n.Content), MaxChoices)
		return
	}
	for i, e := range n.Content {
		e = strictyaml.Resolve(e)
		if e.Kind != yaml.ScalarNode {
			p.Fail(path, "value %d is %s, not a number, string or boolean", i+1, strictyaml.Describe(e))
			continue
		}
		switch e.ShortTag() {
		case "!!int":
			var v int64
			if err := e.Decode(&v); err != nil {
				p.Fail(path, "value %d: %s is out of range", i+1, e.Value)
				continue
			}
			*dst = append(*dst, IntValue(v))
		case "!!float":
			var v float64
			if err := e.Decode(&v); err != nil {
				p.Fail(path, "value %d: %s is out of range", i+1, e.Value)
				continue
			}
			*dst = append(*dst, Float(v))
		case "!!str":
			*dst = append(*dst, String(e.Value))
		case "!!bool":
			var v bool
			if err := e.Decode(&v); err != nil {
				p.Fail(path, "value %d: %s is not a boolean", i+1, e.Value)
				continue
			}
			*dst = append(*dst, Bool(v))
		default:
			p.Fail(path, "value %d is %s, not a number, string or boolean", i+1, strictyaml.Describe(e))
		}
	}
}

// job parses the job sub-tree with jobspec.Parse: the sub-tree is written
// out as a YAML document of its own, parsed, and the errors' lines mapped
// back to this file through the node trees.
func (p *sparser) job(path string, n *yaml.Node, dst *jobspec.Spec) {
	if n.Kind != yaml.MappingNode {
		p.TypeError(path, n, "a mapping (a job spec: name, dataset, …)")
		return
	}
	budget := copyBudget
	sub := copyNode(n, 0, &budget)
	if budget < 0 {
		// Not reached through Parse: Mapping refuses such a value first.
		p.Fail(path, "aliases expand to more than %d nodes", copyBudget)
		return
	}
	data, err := yaml.Marshal(sub)
	if err != nil {
		p.Fail(path, "cannot re-encode: %v", err)
		return
	}
	spec, err := jobspec.Parse(data, p.File())
	if err == nil {
		*dst = spec
		return
	}
	p.MarkFailed(path)
	var back yaml.Node
	lineMap := map[int]int{}
	if yaml.Unmarshal(data, &back) == nil && len(back.Content) == 1 {
		mapLines(back.Content[0], sub, lineMap)
	}
	orig := func(l int) int {
		if o, ok := lineMap[l]; ok {
			return o
		}
		return p.Line(path)
	}
	var errs jobspec.Errors
	if !errors.As(err, &errs) {
		p.Fail(path, "%v", err)
		return
	}
	for _, e := range errs {
		field := path
		if e.Field != "" {
			field = path + "." + e.Field
		}
		msg := firstSetLine.ReplaceAllStringFunc(e.Msg, func(m string) string {
			l, _ := strconv.Atoi(firstSetLine.FindStringSubmatch(m)[1])
			return "first set on line " + strconv.Itoa(orig(l))
		})
		p.Add(orig(e.Line), field, "%s", msg)
	}
}

var firstSetLine = regexp.MustCompile(`first set on line (\d+)`)

// copyBudget bounds the nodes copyNode copies: the job sub-tree's own
// nodes plus what its aliases may stand for (strictyaml.MaxAliasNodes,
// checked before the sub-tree gets here), with room to spare.
const copyBudget = 2*strictyaml.MaxAliasNodes + jobspec.MaxSpecBytes

// copyNode copies n with aliases expanded and comments dropped, keeping
// lines. Each copied node takes one from *budget; once it is below zero
// copyNode stops copying, so that an alias bomb costs at most the budget
// (the caller checks it). depth bounds a chain of aliases that refers to
// itself; nodes past it are copied as null.
func copyNode(n *yaml.Node, depth int, budget *int) *yaml.Node {
	n = strictyaml.Resolve(n)
	*budget--
	if depth > 50 || *budget < 0 {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null", Line: n.Line}
	}
	c := &yaml.Node{Kind: n.Kind, Style: n.Style, Tag: n.Tag, Value: n.Value, Line: n.Line, Column: n.Column}
	for _, e := range n.Content {
		c.Content = append(c.Content, copyNode(e, depth+1, budget))
		if *budget < 0 {
			break
		}
	}
	return c
}

// mapLines walks two trees of the same shape and maps each line of a to
// the line of the matching node of b (the first on that line wins).
func mapLines(a, b *yaml.Node, m map[int]int) {
	if _, ok := m[a.Line]; !ok {
		m[a.Line] = b.Line
	}
	if len(a.Content) != len(b.Content) {
		return
	}
	for i := range a.Content {
		mapLines(a.Content[i], b.Content[i], m)
	}
}
