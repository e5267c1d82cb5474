#!/bin/sh
# Median wall time of `davit-launcher exec` for a one-phase `true` run against
# a bare `docker run --rm` of the same image, N runs each (default 20), in one go.
#
#   bench/exec_vs_docker_run.sh [BUILD_DIR] [N]
#
# Needs a Docker Engine and davit/runner-busybox (scripts/build-runner-image).
# Containers use network none; the state directory is temporary and removed.
set -eu

BUILD="${1:-build}"
N="${2:-20}"
IMAGE="davit/runner-busybox"
LAUNCHER="$BUILD/davit-launcher"
[ -x "$LAUNCHER" ] || { echo "no $LAUNCHER; build first" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
printf '{"image":"%s","phases":[{"name":"a","commands":["true"]}]}\n' "$IMAGE" >"$tmp/spec.json"
export DAVIT_STATE_DIR="$tmp/state" DAVIT_WORKER_NETWORK=none

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# One untimed run of each first, so that neither pays for a cold cache.
"$LAUNCHER" exec "$tmp/spec.json" >/dev/null 2>&1
docker run --rm --network none "$IMAGE" true

i=0
while [ "$i" -lt "$N" ]; do
    t0=$(now_ms)
    "$LAUNCHER" exec "$tmp/spec.json" >/dev/null 2>&1
    t1=$(now_ms)
    docker run --rm --network none "$IMAGE" true
    t2=$(now_ms)
    echo "$((t1 - t0))" >>"$tmp/exec"
    echo "$((t2 - t1))" >>"$tmp/docker"
    i=$((i + 1))
done

median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "runs each:                        $N"
echo "davit-launcher exec (median ms):  $(median "$tmp/exec")"
echo "docker run --rm (median ms):      $(median "$tmp/docker")"
