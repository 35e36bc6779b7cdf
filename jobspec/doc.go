// Package jobspec is the job specification of trainctl: the YAML file that
// `trainctl submit -f job.yaml` reads, in the spirit of Determined's
// experiment config, and the JSON the /v1/jobs API carries.
//
//	name: unet-shapes
//	dataset: shapes@v1          # NAME[@VERSION]
//	model: unet-s               # only unet-s today
//	hyperparameters: {epochs: 5, batch: 8, lr: 0.001, optimizer: adam}
//	resources: {ranks: 1, gpus_per_rank: 0, cpus_per_rank: 2, spot: true}
//	max_restarts: 3
//	checkpoint_every: 50        # steps
//	priority: 50                # 0..100
//	max_time: 10m               # optional
//
// Parse is strict: unknown fields, duplicate fields and values of the wrong
// type are errors, and every error names the file, the line and the field
// path ("job.yaml:7: hyperparameters.lr: \"fast\" is not a number"). It
// reports all problems at once. Omitted fields take the defaults Defaults
// documents; Validate checks a Spec that arrived as JSON.
//
// In the data flow of docs/architecture.md the CLI parses the file and submits the
// Spec; the coordinator validates and stores it with the job, the scheduler
// reads its resources and priority, and a worker turns it into the trainer's
// configuration when it runs an attempt. deploy/examples/job.yaml is a
// documented example.
package jobspec
