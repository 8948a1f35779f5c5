#!/usr/bin/env bash
# SIGKILL during a Box upload on a server-throttled link, then a restart: prints
# how many bytes the server received beyond the file (issue 6, item 1).
#
#   cargo build -p dropship -p dropship-testbed
#   scripts/sigkill-on-slow-server.sh [runs]      # default 5 runs
#
# Testbed at 32 MiB/s (server side), a 64 MiB file, Box's 8 MiB parts, 4 in flight,
# SIGKILL at a random moment 0.9–2.0 s after the file appears. The bound is the file
# plus the parts in flight: 64 MiB + 4 × 8 MiB = 1.5 × the file (plus about 1 KB of
# JSON request bodies). Loopback only.
set -euo pipefail
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/debug}
PORT=${PORT:-8911}
RUNS=${1:-5}
SIZE=67108864
for run in $(seq 1 "$RUNS"); do
  W=$(mktemp -d)
  mkdir -p "$W/outbox" "$W/store"
  printf testbed-secret > "$W/token"
  cat > "$W/d.toml" <<EOT
[watch]
path = "outbox"
settle = "200ms"
[journal]
path = "journal.db"
[upload]
workers = 2
parts_in_flight = 4
retry_base = "200ms"
retry_max = "2s"
[backend]
type = "box"
api_url = "http://127.0.0.1:$PORT/box"
upload_url = "http://127.0.0.1:$PORT/box"
token_file = "token"
EOT
  "$BIN/dropship-testbed" --listen "127.0.0.1:$PORT" --store "$W/store" --throttle-bps 33554432 > "$W/tb.log" 2>&1 &
  TB=$!
  sleep 0.5
  head -c $SIZE /dev/urandom > "$W/big.tmp"
  "$BIN/dropship" run --config "$W/d.toml" > "$W/d1.log" 2>&1 &
  D=$!
  sleep 0.3
  mv "$W/big.tmp" "$W/outbox/big.bin"
  KILL_AT=$(python3 -c "import random; print(round(random.uniform(0.9, 2.0), 2))")
  sleep "$KILL_AT"
  kill -9 $D; wait $D 2>/dev/null || true
  "$BIN/dropship" run --config "$W/d.toml" > "$W/d2.log" 2>&1 &
  D=$!
  state=-
  for _ in $(seq 1 240); do
    state=$("$BIN/dropship" status --json --config "$W/d.toml" \
      | python3 -c 'import json,sys; f=json.load(sys.stdin)["files"]; print(f[0]["state"] if f else "-")')
    [ "$state" = done ] || [ "$state" = failed ] && break
    sleep 0.5
  done
  kill $D; wait $D 2>/dev/null || true
  recv=$(curl -s "127.0.0.1:$PORT/_testbed/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_received"])')
  kill $TB; wait $TB 2>/dev/null || true
  python3 -c "print('run $run: SIGKILL at ${KILL_AT}s, $state, bytes_received %.3f x the file, %d beyond it (bound %d)' % ($recv/$SIZE, $recv-$SIZE, 4*8388608))"
  rm -rf "$W"
done
