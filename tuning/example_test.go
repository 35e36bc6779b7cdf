package tuning_test

import (
	"errors"
	"fmt"

	"github.com/trainctl/trainctl/tuning"
)

// A grid over two parameters: names in order, the last varying fastest,
// then ErrExhausted.
func ExampleGrid() {
	space, err := tuning.NewSpace(
		tuning.Param{Name: "optimizer", Type: tuning.Choice, Values: []tuning.Value{tuning.String("adam"), tuning.String("sgd")}},
		tuning.Param{Name: "lr", Type: tuning.LogUniform, Low: 0.001, High: 0.1, GridPoints: 2},
	)
	if err != nil {
		panic(err)
	}
	grid, err := tuning.NewGrid(space)
	if err != nil {
		panic(err)
	}
	for n := 0; ; n++ {
		p, err := grid.Suggest(n, nil)
		if errors.Is(err, tuning.ErrExhausted) {
			fmt.Println("exhausted at trial", n)
			break
		}
		fmt.Println(n, p)
	}
	// Output:
	// 0 lr=0.001 optimizer=adam
	// 1 lr=0.001 optimizer=sgd
	// 2 lr=0.1 optimizer=adam
	// 3 lr=0.1 optimizer=sgd
	// exhausted at trial 4
}

// Parse reports every problem with its file, line and field.
func ExampleParse() {
	_, err := tuning.Parse([]byte(`name: lr-sweep
job: {name: t, dataset: shapes@v1, hyperparameters: {lr: fast}}
search_space:
  lr: {type: loguniform, low: 0, high: 0.1}
objective: {metric: val_mean_iou, mode: best}
`), "sweep.yaml")
	fmt.Println(err)
	// Output:
	// sweep.yaml:2: job.hyperparameters.lr: "fast" is not a number
	// sweep.yaml:4: search_space.lr: loguniform needs low > 0, got 0
	// sweep.yaml:5: objective.mode: "best" is not min or max
}
