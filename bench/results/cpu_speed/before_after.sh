#!/bin/bash
# Two builds of `ptycho`, alternately, three rounds: training samples/s at gridsize 1 and 2 (batch 16,
# 5 steps) and inference patterns/s. Usage: before_after.sh BEFORE_BINARY AFTER_BINARY
set -euo pipefail
rate() { python3 -c "import json,sys; t=sys.stdin.read(); print(round(json.loads(t[t.index('{'):])['$1'], 1))"; }
for round in 1 2 3; do
  for build in "$1" "$2"; do
    gs1=$("$build" bench train --device cpu --quick --json --gridsize 1 --batch-size 16 --steps 5 2>/dev/null | rate samples_per_s)
    gs2=$("$build" bench train --device cpu --quick --json --gridsize 2 --batch-size 16 --steps 5 2>/dev/null | rate samples_per_s)
    infer=$("$build" bench infer --device cpu --json 2>/dev/null | rate patterns_per_s)
    echo "round $round $build: gs1 $gs1 gs2 $gs2 infer $infer"
  done
done
