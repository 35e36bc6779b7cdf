package layers

import (
	"bufio"
	"bytes"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/trainctl/trainctl/"

// rank is each top-level tree's layer: a package may import only packages
// of its own tree or of a lower rank.
var rank = map[string]int{
	"internal":    0,
	"dataset":     1,
	"artifact":    1,
	"membership":  1,
	"jobspec":     2,
	"trainer":     2,
	"tuning":      3,
	"api":         4,
	"coordinator": 5,
	"worker":      5,
	"serving":     5,
	"cmd":         6,
}

// tree returns the top-level directory of a package path inside the module.
func tree(pkg string) string {
	top, _, _ := strings.Cut(strings.TrimPrefix(pkg, module), "/")
	return top
}

// allowed reports why from may not import to, or "" when it may. test says
// whether the import is from a test file.
func allowed(from, to string, test bool) string {
	ft, tt := tree(from), tree(to)
	fr, ok := rank[ft]
	if !ok {
		return "package " + from + " is in no layer: add its tree to rank"
	}
	tr, ok := rank[tt]
	if !ok {
		return "package " + to + " is in no layer: add its tree to rank"
	}
	if tt == "coordinator" && ft != "coordinator" {
		root := strings.TrimSuffix(to, "/") == module+"coordinator"
		switch {
		case !root:
			return "only coordinator/ imports the server's own packages"
		case ft == "cmd" || test:
			return ""
		default:
			return "only cmd/trainctl imports the coordinator, to start a server"
		}
	}
	if ft == tt {
		return ""
	}
	if tr >= fr {
		return "imports upward or sideways (layer " + strconv.Itoa(fr) + " → " + strconv.Itoa(tr) + ")"
	}
	return ""
}

// imports lists "pkg kind dep" for every in-module import of every package,
// kind being "import" or "test".
func imports(t *testing.T) [][3]string {
	t.Helper()
	const format = `{{$p := .ImportPath}}{{range .Imports}}{{$p}} import {{.}}
{{end}}{{range .TestImports}}{{$p}} test {{.}}
{{end}}{{range .XTestImports}}{{$p}} test {{.}}
{{end}}`
	cmd := exec.Command("go", "list", "-f", format, module+"...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var edges [][3]string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && strings.HasPrefix(f[2], module) && f[2] != f[0] {
			edges = append(edges, [3]string{f[0], f[1], f[2]})
		}
	}
	if len(edges) < 50 {
		t.Fatalf("go list found only %d in-module imports; is the module path still %s?", len(edges), module)
	}
	return edges
}

func TestImportsFlowDownward(t *testing.T) {
	for _, e := range imports(t) {
		if why := allowed(e[0], e[2], e[1] == "test"); why != "" {
			t.Errorf("%s %ss %s: %s", strings.TrimPrefix(e[0], module), e[1], strings.TrimPrefix(e[2], module), why)
		}
	}
}

// TestRule checks the rule itself on imports the tree must never have, so
// that a mistake in allowed cannot pass every real edge unnoticed.
func TestRule(t *testing.T) {
	tests := []struct {
		from, to string
		test     bool
		ok       bool
	}{
		{"worker", "api", false, true},
		{"worker", "coordinator/structs", false, false},
		{"worker", "coordinator", false, false},
		{"worker", "coordinator", true, true},
		{"serving", "coordinator/state", true, false},
		{"cmd/trainctl", "coordinator", false, true},
		{"cmd/trainctl", "coordinator/structs", false, false},
		{"worker", "serving", false, false},
		{"api", "coordinator", false, false},
		{"tuning", "api", false, false},
		{"jobspec", "tuning", false, false},
		{"dataset", "trainer", false, false},
		{"trainer", "dataset", false, true},
		{"coordinator/state", "coordinator/structs", false, true},
		{"internal/durable", "dataset", false, false},
		{"newtree", "api", false, false},
	}
	for _, tt := range tests {
		got := allowed(module+tt.from, module+tt.to, tt.test) == ""
		if got != tt.ok {
			t.Errorf("allowed(%s → %s, test=%v) = %v, want %v", tt.from, tt.to, tt.test, got, tt.ok)
		}
	}
}
