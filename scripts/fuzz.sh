#!/bin/sh
# Runs every fuzz target of internal/tensorio in turn for a duration or a
# count of inputs each (default 10s), e.g. scripts/fuzz.sh 10m or 100000x. Extra arguments go to go test
# (e.g. -parallel 1; for 10m or more also -timeout 0, since go test's default
# 10m timeout would cut the run short). A crasher is saved under
# internal/tensorio/testdata/fuzz and fails the run.
set -eu
T=${1:-10s}
[ $# -gt 0 ] && shift
cd "$(dirname "$0")/.."
for target in FuzzNPY FuzzNPZ FuzzSafetensors FuzzJSON FuzzSniff; do
	echo "== $target ($T)"
	go test -run '^$' -fuzz "^$target\$" -fuzztime "$T" "$@" ./internal/tensorio
done
