// Package trainer is the training loop of trainctl: it turns a dataset
// version into a trained UNet checkpoint, evaluates checkpoints and predicts
// masks with them.
//
// The engine underneath is split by concern, as llm.c splits it: gemm (the
// SGEMM every convolution runs on), nn (layer forward/backward pairs over
// flat float32 buffers), unet (the UNet-S model with one flat Params buffer
// and one flat Grads buffer) and optim (Adam and SGD over those buffers, with
// state a checkpoint saves exactly). This package adds what sits around a
// training step:
//
//   - Train (train.go) reads the train split through dataset.Reader in the
//     seeded, sharded, per-epoch shuffled order a worker uses (shard 0 of 1
//     for a single process), assembles batches, steps model and optimizer,
//     evaluates on the val split at each epoch end, checkpoints every N steps
//     and at epoch ends, and reports progress through callbacks. Resuming
//     from a checkpoint restores weights, optimizer state, augmentation RNG,
//     data position, step and gradient scales, and gives bit-identical
//     weights to a run that was never interrupted, with any thread count and
//     any number of ranks.
//   - Data-parallel training (parallel.go, step.go, exact.go): with a
//     TrainConfig.Collective the run is one rank of N. Every example's
//     gradient is computed on its own and summed in int64 fixed point, so
//     the sum does not depend on how a batch is split: N ranks end with one
//     process's weights, bit for bit (docs/architecture.md, "Data-parallel
//     training"). InexactGrads keeps the batched float32 path for one
//     process. The ring itself is trainer/collective.
//   - Metrics (metrics.go): loss, pixel accuracy, per-class and mean IoU from
//     a confusion matrix.
//   - The checkpoint file format (checkpoint.go): magic, version, a JSON
//     header, the weights and optimizer state, and a SHA-256 over it all,
//     written atomically.
//   - Predictor (predict.go): a model loaded from a checkpoint, for
//     Evaluate and Predict; serving uses the same type.
//
// Input scaling: images (uint8, H×W×C interleaved, as dataset examples and
// decoded files are) become float32 N×C×H×W tensors with each value divided
// by 255, so inputs lie in [0, 1]; no mean/std normalisation is applied
// (InputSpec records the scaling in every checkpoint).
//
// In the data flow of docs/architecture.md this package runs inside a worker (and inside
// `trainctl train` for a single process): datasets come in through
// dataset.Reader, checkpoints and metrics go out to the coordinator, and
// serving loads the best checkpoint through Predictor.
package trainer
