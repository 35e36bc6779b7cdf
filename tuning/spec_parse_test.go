package tuning

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/trainctl/trainctl/internal/strictyaml"
)

// bomb is a flow list of levels nested lists, each holding width aliases
// of the one before: a few hundred bytes that expand to about
// width^levels nodes. Its lists are anchored l1, l2, ….
func bomb(levels, width int) string {
	var b strings.Builder
	b.WriteString("[&l1 [" + strings.TrimSuffix(strings.Repeat("1,", width), ",") + "]")
	for i := 2; i <= levels; i++ {
		fmt.Fprintf(&b, ", &l%d [%s]", i, strings.TrimSuffix(strings.Repeat("*l"+strconv.Itoa(i-1)+",", width), ","))
	}
	return b.String() + "]"
}

// TestParseAliasedNames checks that a scheduler or searcher name given by
// an alias decides which fields apply as the name itself would.
func TestParseAliasedNames(t *testing.T) {
	const head = "name: &n asha\n" + baseJob +
		"search_space:\n  lr: {type: loguniform, low: 0.0001, high: 0.1}\nobjective: {metric: &t tpe, mode: min}\n"
	tests := []struct {
		name  string
		extra string
		check func(s Spec) bool
	}{
		{"scheduler name", "scheduler: {name: *n, reduction_factor: 3}\n",
			func(s Spec) bool { return s.Scheduler.Name == SchedulerASHA && s.Scheduler.ReductionFactor == 3 }},
		{"searcher name", "searcher: {name: *t, gamma: 0.5}\n",
			func(s Spec) bool { return s.Searcher.Name == SearcherTPE && s.Searcher.TPE.Gamma == 0.5 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(head+tt.extra), "sweep.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(s) {
				t.Errorf("parsed scheduler %+v searcher %+v", s.Scheduler, s.Searcher)
			}
		})
	}
}

// TestScalarFieldAlias checks that scalarField resolves an alias for the
// mapping and for the value, and ignores values that are not scalars.
func TestScalarFieldAlias(t *testing.T) {
	var doc yaml.Node
	const src = "v: &v median\na: &m {name: asha}\nb: *m\nc: {name: *v}\nd: {name: [x]}\ne: {name: x, name: [y]}\n"
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	field := func(key string) *yaml.Node {
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == key {
				return root.Content[i+1]
			}
		}
		t.Fatalf("no key %s", key)
		return nil
	}
	tests := []struct{ key, want string }{
		{"a", "asha"},
		{"b", "asha"},   // the mapping is an alias
		{"c", "median"}, // the value is an alias
		{"d", ""},       // not a scalar
		{"e", ""},       // the last one counts
		{"v", ""},       // not a mapping
	}
	for _, tt := range tests {
		if got := scalarField(field(tt.key), "name"); got != tt.want {
			t.Errorf("scalarField(%s) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

// TestCopyNodeBudget checks that copyNode stops at its budget (Parse never
// lets a value that large reach it; this is the second line of defence).
func TestCopyNodeBudget(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("a: "+bomb(9, 10)+"\n"), &doc); err != nil {
		t.Fatal(err)
	}
	budget := 1000
	c := copyNode(doc.Content[0], 0, &budget)
	if budget >= 0 {
		t.Fatalf("budget left %d after copying a bomb; want it spent", budget)
	}
	n := 0
	var count func(*yaml.Node)
	count = func(x *yaml.Node) {
		n++
		for _, e := range x.Content {
			count(e)
		}
	}
	count(c)
	if n > 1001 {
		t.Errorf("copied %d nodes with a budget of 1000", n)
	}
	budget = copyBudget
	small := "a: " + bomb(4, 10) + "\n"
	if err := yaml.Unmarshal([]byte(small), &doc); err != nil {
		t.Fatal(err)
	}
	copyNode(doc.Content[0], 0, &budget)
	if spent := copyBudget - budget; budget < 0 || spent <= strictyaml.MaxAliasNodes/10 {
		t.Errorf("copying %d aliased nodes spent %d of the budget", strictyaml.MaxAliasNodes/10, spent)
	}
}
