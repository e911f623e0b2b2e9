#!/bin/sh
# Liaison classification throughput over the shared corpus and the labelled sets.
# Usage: bench/classify.sh   (ROUNDS=N to change the number of timed passes; CONCORD_CORPUS
# to point at another corpus). Prints messages/s, µs/message and the statements found.
set -eu
cd "$(dirname "$0")/.."
exec cargo bench --locked --bench classify
