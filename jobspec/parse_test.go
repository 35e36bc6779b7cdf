package jobspec

import (
	"fmt"
	"strconv"
	"strings"
)

// bomb is a flow list of levels nested lists, each holding width aliases
// of the one before: a few hundred bytes that expand to about
// width^levels nodes ("billion laughs"). Its lists are anchored l1, l2, ….
func bomb(levels, width int) string {
	var b strings.Builder
	b.WriteString("[&l1 [" + strings.TrimSuffix(strings.Repeat("1,", width), ",") + "]")
	for i := 2; i <= levels; i++ {
		fmt.Fprintf(&b, ", &l%d [%s]", i, strings.TrimSuffix(strings.Repeat("*l"+strconv.Itoa(i-1)+",", width), ","))
	}
	return b.String() + "]"
}
