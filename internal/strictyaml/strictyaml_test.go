package strictyaml

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// target is what the test schema decodes into.
type target struct {
	Name  string
	N     int
	U     uint64
	F     float64
	B     bool
	D     time.Duration
	Inner struct{ X int }
}

// decode parses src with a Parser of intBits and the test schema, and
// returns the target and the problems as "LINE: FIELD: MSG" lines.
func decode(t *testing.T, src string, intBits int) (target, []string) {
	t.Helper()
	p := New("t.yaml", intBits)
	var tg target
	if root := p.Root([]byte(src), 1<<10, "a test spec", "empty test spec"); root != nil {
		p.Mapping("", root, []Field{
			{Name: "name", Set: func(path string, n *yaml.Node) { p.Str(path, n, &tg.Name) }},
			{Name: "n", Set: func(path string, n *yaml.Node) { p.Int(path, n, &tg.N) }},
			{Name: "u", Set: func(path string, n *yaml.Node) { p.Uint(path, n, &tg.U) }},
			{Name: "f", Set: func(path string, n *yaml.Node) { p.Float(path, n, &tg.F) }},
			{Name: "b", Set: func(path string, n *yaml.Node) { p.Bool(path, n, &tg.B) }},
			{Name: "d", Set: func(path string, n *yaml.Node) { p.Duration(path, n, &tg.D) }},
			{Name: "inner", Set: func(path string, n *yaml.Node) {
				p.Mapping(path, n, []Field{
					{Name: "x", Set: func(path string, n *yaml.Node) { p.Int(path, n, &tg.Inner.X) }},
				})
			}},
		})
	}
	var got []string
	for _, pr := range p.Problems() {
		got = append(got, fmt.Sprintf("%d: %s: %s", pr.Line, pr.Field, pr.Msg))
	}
	return tg, got
}

func TestParserProblems(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		intBits int
		want    []string
	}{
		{"valid", "name: a\nn: 3\nu: 4\nf: 1\nb: true\nd: 90s\ninner:\n  x: 2\n", 64, nil},
		{"null leaves default", "name: ~\nn:\n", 64, nil},
		{"unknown field", "name: a\nnmae: b\n", 64,
			[]string{"2: nmae: unknown field (known: name, n, u, f, b, d, inner)"}},
		{"nested unknown", "inner:\n  y: 1\n", 64, []string{"2: inner.y: unknown field (known: x)"}},
		{"duplicate", "n: 1\nname: a\nn: 2\n", 64, []string{"3: n: duplicate field (first set on line 1)"}},
		{"non-scalar key", "? [a]\n: 1\n", 64, []string{"1: : a list is not a field name"}},
		{"string for int", "n: \"3\"\n", 64, []string{`1: n: "3" is not an integer`}},
		{"float for int", "n: 1.5\n", 64, []string{"1: n: 1.5 is not an integer"}},
		{"int32 bound", "n: 2147483648\n", 32, []string{"1: n: 2147483648 is out of range"}},
		{"int32 max fits", "n: 2147483647\n", 32, nil},
		{"int32 min fits", "n: -2147483648\n", 32, nil},
		{"int64 fits", "n: 2147483648\n", 64, nil},
		{"int64 bound", "n: 9223372036854775808\n", 64, []string{"1: n: 9223372036854775808 is out of range"}},
		{"negative uint", "u: -1\n", 64, []string{"1: u: must be >= 0, got -1"}},
		{"number for string", "name: 12\n", 64, []string{`1: name: 12 is not a string (quote it: "12")`}},
		{"string for number", "f: fast\n", 64, []string{`1: f: "fast" is not a number`}},
		{"yes is not bool", "b: yes\n", 64, []string{`1: b: "yes" is not a boolean (true or false)`}},
		{"bad duration", "d: 5 minutes\n", 64, []string{`1: d: "5 minutes" is not a duration (like 90s, 10m or 1h30m)`}},
		{"mapping for scalar", "n:\n  a: 1\n", 64, []string{"1: n: a mapping is not an integer"}},
		{"scalar for mapping", "inner: 3\n", 64, []string{"1: inner: 3 is not a mapping"}},
		{"sorted by line", "inner:\n  x: a\nn: b\nzz: 1\n", 64, []string{
			`2: inner.x: "a" is not an integer`, `3: n: "b" is not an integer`,
			"4: zz: unknown field (known: name, n, u, f, b, d, inner)"}},
		{"alias", "base: &b 7\n", 64, []string{"1: base: unknown field (known: name, n, u, f, b, d, inner)"}},
		{"empty", "", 64, []string{"0: : empty test spec"}},
		{"null document", "~\n", 64, []string{"0: : empty test spec"}},
		{"two documents", "n: 1\n---\nn: 2\n", 64, []string{"3: : a second YAML document; a test spec is one document"}},
		{"syntax", "n: [1\n", 64, nil}, // checked below: a YAML syntax problem
		{"alias key", "name: &k a\n*k : 2\n", 64, []string{"2: : an alias (*k) is not a field name"}},
		{"merge key", "name: a\n<<: {n: 1}\n", 64, []string{"2: : merge keys (<<) are not supported; write the fields out"}},
		{"nested merge key", "name: &i {x: 1}\ninner:\n  <<: *i\n", 64, []string{
			`1: name: a mapping is not a string`, "3: inner: merge keys (<<) are not supported; write the fields out"}},
		{"quoted << is a name", "\"<<\": 1\n", 64, []string{"1: <<: unknown field (known: name, n, u, f, b, d, inner)"}},
		{"alias bomb", "inner: " + bomb(6, 10) + "\n", 64, []string{"1: inner: aliases expand to more than 100000 nodes"}},
		{"deep alias bomb saturates", "inner: " + bomb(30, 4) + "\n", 64, []string{"1: inner: aliases expand to more than 100000 nodes"}},
		{"alias bomb through an alias", "name: " + bomb(6, 10) + "\nn: *l5\n", 64, []string{
			"1: name: aliases expand to more than 100000 nodes", "2: n: aliases expand to more than 100000 nodes"}},
		{"aliases within the bound", "inner: " + bomb(4, 10) + "\n", 64, []string{"1: inner: a list is not a mapping"}},
		{"alias cycle", "inner: &i {x: *i}\n", 64, []string{"1: inner: alias *i refers to a value that contains it"}},
		{"alias cycle in a list", "n: 1\nname: &l [1, [2, *l]]\n", 64, []string{"2: name: alias *l refers to a value that contains it"}},
		{"invalid UTF-8", "name: a\nn: \xff\n", 64, []string{"2: : YAML syntax: invalid UTF-8 (byte 0xff)"}},
		{"truncated UTF-8", "name: a\n\nname: \xc3", 64, []string{"3: : YAML syntax: invalid UTF-8 (byte 0xc3)"}},
		{"UTF-16 surrogate in UTF-8", "name: \xed\xa0\x80\n", 64, []string{"1: : YAML syntax: invalid UTF-8 (byte 0xed)"}},
		{"control character, CRLF lines", "name: a\r\nn: 1\r\nb: \x01\r\n", 64, []string{"3: : YAML syntax: control character U+0001 is not allowed"}},
		{"DEL, CR lines", "n: 1\rname: \x7f\r", 64, []string{"2: : YAML syntax: control character U+007F is not allowed"}},
		{"C1 control character", "n: 1\nname: \u0080\n", 64, []string{"2: : YAML syntax: control character U+0080 is not allowed"}},
		{"NUL", "n: 1\x00\n", 64, []string{"1: : YAML syntax: control character U+0000 is not allowed"}},
		{"tab, BOM, U+FFFD and astral are text", "\ufeffname: \"\ta\ufffd\U0001F600\"\n", 64, nil},
		{"UTF-16 is left to yaml.v3", "\xff\xfen\x00:\x00 \x003\x00\n\x00", 64, nil},
		{"too large", strings.Repeat("#", 1<<10+1), 64, []string{"0: : is larger than 1024 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := decode(t, tt.src, tt.intBits)
			if tt.name == "syntax" {
				if len(got) != 1 || !strings.Contains(got[0], ": : YAML syntax: ") {
					t.Fatalf("got %q, want one YAML syntax problem", got)
				}
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestParserValues(t *testing.T) {
	src := "name: a\nn: -5\nu: 18446744073709551615\nf: 2\nb: false\nd: 1h30m\ninner: &in\n  x: 9\n"
	got, probs := decode(t, src, 64)
	if probs != nil {
		t.Fatalf("problems: %q", probs)
	}
	want := target{Name: "a", N: -5, U: 1<<64 - 1, F: 2, D: 90 * time.Minute}
	want.Inner.X = 9
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestAliasResolved(t *testing.T) {
	// An alias stands for its anchor's value, mapping and scalar alike.
	p := New("t.yaml", 64)
	root := p.Root([]byte("a: &v 4\nb: *v\n"), 1<<10, "x", "empty")
	var a, b int
	p.Mapping("", root, []Field{
		{Name: "a", Set: func(path string, n *yaml.Node) { p.Int(path, n, &a) }},
		{Name: "b", Set: func(path string, n *yaml.Node) { p.Int(path, n, &b) }},
	})
	if p.Count() != 0 || a != 4 || b != 4 {
		t.Errorf("a=%d b=%d problems=%v, want 4 4 none", a, b, p.Problems())
	}
}

func TestLinesAndFailed(t *testing.T) {
	p := New("t.yaml", 64)
	root := p.Root([]byte("inner:\n  x: bad\nname: a\n"), 1<<10, "x", "empty")
	var x int
	var name string
	p.Mapping("", root, []Field{
		{Name: "inner", Set: func(path string, n *yaml.Node) {
			p.Mapping(path, n, []Field{{Name: "x", Set: func(path string, n *yaml.Node) { p.Int(path, n, &x) }}})
		}},
		{Name: "name", Set: func(path string, n *yaml.Node) { p.Str(path, n, &name) }},
	})
	checks := []struct {
		what      string
		got, want any
	}{
		{"Line(inner)", p.Line("inner"), 1}, // a block mapping points at its key
		{"Line(inner.x)", p.Line("inner.x"), 2},
		{"LineOf(inner.x.deep)", p.LineOf("inner.x.deep"), 2},
		{"LineOf(missing)", p.LineOf("missing"), 0},
		{"Failed(inner.x)", p.Failed("inner.x"), true},
		{"Failed(name)", p.Failed("name"), false},
		{"FailedUnder(inner)", p.FailedUnder("inner"), true},
		{"FailedUnder(in)", p.FailedUnder("in"), false},
		{"Count", p.Count(), 1},
		{"File", p.File(), "t.yaml"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	p.MarkFailed("name")
	p.SetLine("extra", 7)
	if !p.Failed("name") || p.Line("extra") != 7 {
		t.Errorf("MarkFailed/SetLine did not stick: failed=%v line=%d", p.Failed("name"), p.Line("extra"))
	}
}

func TestEntries(t *testing.T) {
	p := New("t.yaml", 64)
	root := p.Root([]byte("a: 1\n[x]: 2\nb: 3\na: 4\n"), 1<<10, "x", "empty")
	var keys []string
	p.Entries("space", root, "parameter", func(fp string, k, v *yaml.Node) {
		keys = append(keys, fp+"="+v.Value+"@"+strconv.Itoa(k.Line))
	})
	if want := []string{"space.a=1@1", "space.b=3@3"}; !slices.Equal(keys, want) {
		t.Errorf("keys %q, want %q", keys, want)
	}
	var got []string
	for _, pr := range p.Problems() {
		got = append(got, fmt.Sprintf("%d: %s: %s", pr.Line, pr.Field, pr.Msg))
	}
	want := []string{"2: space: a list is not a parameter name", "4: space.a: duplicate parameter (first set on line 1)"}
	if !slices.Equal(got, want) {
		t.Errorf("problems %q, want %q", got, want)
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(path, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := ReadFile(path, 4, "test spec")
	if err != nil || string(data) != "01234" {
		t.Errorf("ReadFile = %q, %v; want the first maxBytes+1 bytes", data, err)
	}
	_, err = ReadFile(filepath.Join(dir, "none.yaml"), 4, "test spec")
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "test spec: ") {
		t.Errorf("missing file: err = %v, want a wrapped fs.ErrNotExist prefixed \"test spec: \"", err)
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		n    *yaml.Node
		want string
	}{
		{&yaml.Node{Kind: yaml.MappingNode}, "a mapping"},
		{&yaml.Node{Kind: yaml.SequenceNode}, "a list"},
		{&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "x"}, `"x"`},
		{&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: "3"}, "3"},
		{&yaml.Node{Kind: yaml.AliasNode, Value: "k"}, "an alias (*k)"},
		{&yaml.Node{}, "an empty value"},
	}
	for _, tt := range tests {
		if got := Describe(tt.n); got != tt.want {
			t.Errorf("Describe(%+v) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

// bomb is a flow list of levels nested lists, each holding width aliases
// of the one before: it expands to about width^levels nodes. Its lists are
// anchored l1, l2, ….
func bomb(levels, width int) string {
	var b strings.Builder
	b.WriteString("[&l1 [" + strings.TrimSuffix(strings.Repeat("1,", width), ",") + "]")
	for i := 2; i <= levels; i++ {
		fmt.Fprintf(&b, ", &l%d [%s]", i, strings.TrimSuffix(strings.Repeat("*l"+strconv.Itoa(i-1)+",", width), ","))
	}
	return b.String() + "]"
}

func TestBombIsSmall(t *testing.T) {
	// The bombs above must stay small inputs for the tests to mean
	// anything: their size is not what is refused.
	if n := len(bomb(30, 4)); n > 1<<10 {
		t.Fatalf("bomb(30, 4) is %d bytes", n)
	}
}

// TestMaxProblems checks that a spec with a problem on every line keeps
// MaxProblems of them and counts the rest, so that its error stays small.
func TestMaxProblems(t *testing.T) {
	var b strings.Builder
	const keys = 10_000
	for i := range keys {
		fmt.Fprintf(&b, "k%d: 1\n", i)
	}
	p := New("t.yaml", 64)
	root := p.Root([]byte(b.String()), 1<<20, "a test spec", "empty")
	if root == nil {
		t.Fatal(p.Problems())
	}
	p.Mapping("", root, []Field{{Name: "name", Set: func(string, *yaml.Node) {}}})
	probs := p.Problems()
	if len(probs) != MaxProblems+1 || p.Count() != keys {
		t.Fatalf("%d problems listed, Count %d; want %d and %d", len(probs), p.Count(), MaxProblems+1, keys)
	}
	if first := probs[0]; first.Line != 1 || first.Field != "k0" {
		t.Errorf("first problem %+v", first)
	}
	want := Problem{Msg: fmt.Sprintf("%d more problems not listed", keys-MaxProblems)}
	if last := probs[MaxProblems]; last != want {
		t.Errorf("last problem %+v, want %+v", last, want)
	}
}

// TestQuote checks that long values are cut, at a character boundary, with
// their length, and short ones quoted whole.
func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"adam", `"adam"`},
		{strings.Repeat("a", MaxQuoteLen), strconv.Quote(strings.Repeat("a", MaxQuoteLen))},
		{strings.Repeat("a", 10_000), `"` + strings.Repeat("a", MaxQuoteLen) + `…" (10000 bytes)`},
		{strings.Repeat("a", MaxQuoteLen-1) + "é" + "b", `"` + strings.Repeat("a", MaxQuoteLen-1) + `…" (66 bytes)`},
	}
	for _, tt := range tests {
		if got := Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%d bytes) = %s, want %s", len(tt.in), got, tt.want)
		}
	}
}
