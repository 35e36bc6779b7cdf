#!/usr/bin/env bash
# The trainctl tour: every command, step by step, on this machine, with no
# downloads. Run by `make tour` (`make demo` runs `trainctl up --demo`);
# safe to run again (each run uses a fresh data directory unless
# TRAINCTL_DEMO_DIR is set).
set -euo pipefail

BIN=${BIN:-bin/trainctl}
DEMO=${TRAINCTL_DEMO_DIR:-$(mktemp -d -t trainctl-demo.XXXXXX)}
export TRAINCTL_DATA_DIR="$DEMO/data"
PORT=${TRAINCTL_DEMO_PORT:-$((20000 + RANDOM % 20000))}
ADDR="127.0.0.1:$PORT"
API="127.0.0.1:$((PORT + 1))"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo; echo "tour interrupted"; exit 130' INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ trainctl %s\n' "$*"; "$BIN" "$@"; }

echo "trainctl tour; state under $DEMO"

step "1. Generate a synthetic segmentation dataset (deterministic by seed)"
run dataset gen --kind shapes --name shapes --n 800 --size 128 --seed 1

step "2. Export part of it as JPEG images + PNG trimaps (the Oxford-IIIT Pet layout)"
run dataset export --out "$DEMO/pets" --limit 200 shapes
ls "$DEMO/pets/images" | head -3

step "3. Ingest that folder as its own dataset"
run dataset ingest --name pets --layout oxford-pet "$DEMO/pets"

step "4. Ingesting the same folder again registers nothing new (content-addressed)"
run dataset ingest --name pets --layout oxford-pet "$DEMO/pets"

step "5. List, show and verify versions"
run dataset ls
run dataset show pets
run dataset verify shapes

step "6. Serve the store over Arrow Flight on $ADDR"
"$BIN" dataset serve --listen "$ADDR" >"$DEMO/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	"$BIN" dataset stream --from "$ADDR" --quiet --limit 1 shapes >/dev/null 2>&1 && break
	sleep 0.1
done

step "7. Stream shard 1 of 4 of epoch 0, as a trainer rank would (first 5, then the summary)"
run dataset stream --from "$ADDR" --shard 1/4 --epoch 0 --seed 7 --limit 5 shapes
run dataset stream --from "$ADDR" --shard 1/4 --epoch 0 --seed 7 --quiet shapes

step "8. Pull the version into a second node's store, verified by digest"
TRAINCTL_DATA_DIR="$DEMO/worker" "$BIN" dataset pull --from "$ADDR" shapes
TRAINCTL_DATA_DIR="$DEMO/worker" "$BIN" dataset verify shapes

step "9. Train UNet-S on it: 3 epochs, 240 steps (about two minutes on 2 cores), evaluating on val"
run train --dataset shapes --epochs 3 --batch 8 --seed 1

step "10. Evaluate the best checkpoint and segment two exported images"
run eval --checkpoint "$TRAINCTL_DATA_DIR/runs/shapes/best.ckpt"
run predict --checkpoint "$TRAINCTL_DATA_DIR/runs/shapes/best.ckpt" --out "$DEMO/masks" \
	"$DEMO/pets/images/shapes-000000.jpg" "$DEMO/pets/images/shapes-000001.jpg"
ls -l "$DEMO/masks"

step "11. Start the cluster in one process: trainctl up (a single-voter Raft coordinator + a worker)"
"$BIN" up --http-addr "$API" --raft-addr "127.0.0.1:$((PORT + 2))" --flight-addr "127.0.0.1:$((PORT + 3))" \
	>"$DEMO/up.log" 2>&1 &
pids+=($!)
export TRAINCTL_COORDINATOR="$API"
for _ in $(seq 150); do # until it answers and has elected itself leader
	out=$("$BIN" cluster status 2>/dev/null) && ! grep -q "none known" <<<"$out" && break
	sleep 0.2
done
run cluster status

step "12. Push the dataset to the cluster and submit a training job (strict YAML spec)"
run dataset push shapes
cat >"$DEMO/job.yaml" <<'YAML'
name: demo-unet
dataset: shapes@v1
hyperparameters: {epochs: 1, batch: 8, lr: 0.001, seed: 1}
resources: {ranks: 1, cpus_per_rank: 2}
checkpoint_every: 20
YAML
cat "$DEMO/job.yaml"
run submit -f "$DEMO/job.yaml" --request-id demo-1 --wait

step "13. The job as the cluster recorded it: attempts, progress, checkpoint"
run jobs ls
JOB=$("$BIN" -o json jobs ls | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' | head -1)
run jobs get "$JOB"

step "14. The same job on 2 data-parallel ranks (a ring over loopback): the same weights, bit for bit"
sed -e 's/name: demo-unet/name: demo-unet-dp/' -e 's/ranks: 1, cpus_per_rank: 2/ranks: 2, cpus_per_rank: 1/' \
	"$DEMO/job.yaml" >"$DEMO/job-dp.yaml"
cat "$DEMO/job-dp.yaml"
echo "\$ trainctl submit -f $DEMO/job-dp.yaml --request-id demo-dp --wait"
out=$("$BIN" submit -f "$DEMO/job-dp.yaml" --request-id demo-dp --wait)
echo "$out"
DP=$(head -1 <<<"$out")
run jobs get "$DP"
run jobs logs "$DP"
echo "final val metrics, 1 rank and 2 ranks (equal):"
"$BIN" -o json jobs get "$JOB" | grep -o '"val_mean_iou": *[0-9.e-]*' | tail -1
"$BIN" -o json jobs get "$DP" | grep -o '"val_mean_iou": *[0-9.e-]*' | tail -1

step "15. A short sweep: 4 learning rates, ASHA stops the poorer half after one epoch (about 3 minutes)"
cat deploy/examples/sweep-demo.yaml
run sweep -f deploy/examples/sweep-demo.yaml --request-id demo-sweep-1 --wait
SWEEP=$("$BIN" -o json sweeps ls | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' | head -1)
run sweeps get "$SWEEP"

step "16. Replay the sweep from its Raft log: every decision and suggestion recomputed"
run sweeps replay "$SWEEP"
run models get demo-sweep

step "17. Serve the registered model over HTTP and segment an image"
SERVE="127.0.0.1:$((PORT + 4))"
"$BIN" serve --model demo-sweep --listen "$SERVE" >"$DEMO/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 150); do curl -sf "http://$SERVE/readyz" >/dev/null && break; sleep 0.2; done
IMG="$DEMO/pets/images/shapes-000000.jpg"
echo "\$ curl -s -H 'Accept: image/png' --data-binary @$IMG http://$SERVE/v1/models/demo-sweep:predict -o $DEMO/mask.png"
curl -s -D - -H 'Accept: image/png' --data-binary @"$IMG" "http://$SERVE/v1/models/demo-sweep:predict" -o "$DEMO/mask.png" | grep -i '^x-\|^HTTP'
echo "\$ curl -s --data-binary @$IMG http://$SERVE/v1/models/demo-sweep:predict   # JSON"
curl -s --data-binary @"$IMG" "http://$SERVE/v1/models/demo-sweep:predict" | cut -c1-300; echo
echo "\$ curl -s --data-binary 'not an image' http://$SERVE/v1/models/demo-sweep:predict"
curl -s --data-binary 'not an image' "http://$SERVE/v1/models/demo-sweep:predict"; echo
curl -s "http://$SERVE/metrics" | grep '^trainctl_serving_requests_total'
echo "open http://$SERVE/ in a browser to upload an image and see its mask"

step "Done"
echo "State is under $DEMO (remove it when done)."
