#!/usr/bin/env bash
# A first session with Lowrank, using only curl: upload a small .npy
# tensor, ask for its SVD, wait for the job, download the factors.
#
#   BASE_URL=http://localhost:8080 docs/walkthrough.sh
#
# API_KEY is sent as a Bearer token when set; the factors land in OUT_DIR
# (default: the current directory). The same commands are in the README,
# and a test runs this script against a fresh server.
set -euo pipefail
BASE_URL=${BASE_URL:-http://localhost:8080}
OUT_DIR=${OUT_DIR:-.}
auth=() # expanded as ${auth[@]+...} so bash 3.2 (macOS) accepts it empty under set -u
if [ -n "${API_KEY:-}" ]; then auth=(-H "Authorization: Bearer $API_KEY"); fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. A 3×2 float32 matrix [[1, 2], [3, 4], [0, 1]] as an .npy file: the
#    magic, version 1.0, a 118-byte header (so the data starts at byte
#    128), then the six values as little-endian float32.
{
  printf '\223NUMPY\001\000\166\000'
  printf "%-117s\n" "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }"
  printf '\000\000\200\077\000\000\000\100'   # 1, 2
  printf '\000\000\100\100\000\000\200\100'   # 3, 4
  printf '\000\000\000\000\000\000\200\077'   # 0, 1
} > "$work/w.npy"

# 2. Upload it; the new tensor's id is in the Location header.
curl -sS -f ${auth[@]+"${auth[@]}"} -D "$work/headers" -o /dev/null \
  -H 'Content-Type: application/octet-stream' --data-binary @"$work/w.npy" \
  "$BASE_URL/v1/tensors?name=w"
tensor=$(tr -d '\r' < "$work/headers" | sed -n 's|^[Ll]ocation: */v1/tensors/||p')
echo "tensor $tensor"

# 3. Submit a rank-2 SVD of it; the job's id is in the Location header.
curl -sS -f ${auth[@]+"${auth[@]}"} -D "$work/headers" -o /dev/null \
  -H 'Content-Type: application/json' \
  -d '{"tensor_id": "'"$tensor"'", "method": "svd", "params": {"rank": 2}}' \
  "$BASE_URL/v1/jobs"
job=$(tr -d '\r' < "$work/headers" | sed -n 's|^[Ll]ocation: */v1/jobs/||p')
echo "job $job"

# 4. Poll until it has finished (at most about a minute).
status=queued tries=0
while [ "$tries" -lt 600 ]; do
  status=$(curl -sS -f ${auth[@]+"${auth[@]}"} "$BASE_URL/v1/jobs/$job" |
    grep -o '"status": *"[a-z]*"' | head -n 1 | sed 's/.*"\([a-z]*\)"$/\1/')
  case $status in succeeded | failed | canceled) break ;; esac
  tries=$((tries + 1))
  sleep 0.1
done
echo "status $status"
[ "$status" = succeeded ] || exit 1

# 5. Download the factors as .npy files: A ≈ U · diag(S) · Vt.
for f in U S Vt; do
  curl -sS -f ${auth[@]+"${auth[@]}"} -o "$OUT_DIR/$f.npy" "$BASE_URL/v1/jobs/$job/factors/$f"
  echo "saved $OUT_DIR/$f.npy"
done
