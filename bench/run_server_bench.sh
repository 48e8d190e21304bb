#!/usr/bin/env bash
# The server's load benchmark (loopback only, bounded): bench/server_load.mjs against
#   1. one `edgevlm serve` (2 slots) with K clients for T seconds plus disconnecting, oversized and
#      slow clients;
#   2. time to first token with and without the decoupled upload, each on a fresh server;
#   3. two instances behind nginx (deploy/nginx/edgevlm.conf), conversations named by header.
# Results as JSON and a markdown summary in BUILD/server-bench/. Usage:
#   bench/run_server_bench.sh [BUILD] [CLIENTS] [SECONDS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-build}"; [[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
CLIENTS="${2:-4}"
SECS="${3:-60}"
OUT="$BUILD/server-bench"
mkdir -p "$OUT"
EXE="$BUILD/edgevlm"
MODEL=(-m "$ROOT/models/edgevlm-nano.gguf" --mmproj "$ROOT/models/edgevlm-nano-mmproj.gguf")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

start() {  # name args... → sets URL (not a subshell: the server must stay this shell's child)
  local log="$OUT/$1.log"; shift
  "$EXE" serve --port 0 "$@" >/dev/null 2>"$log" &
  PIDS+=($!)
  for _ in $(seq 300); do
    grep -q "listening on" "$log" 2>/dev/null && break
    sleep 0.1
  done
  URL=$(grep -o 'http://[0-9.:]*' "$log" | head -1)
  [ -n "$URL" ] || { echo "run_server_bench: the server did not start:" >&2; cat "$log" >&2; exit 1; }
}
stop_all() { cleanup; PIDS=(); }

echo "== load: $CLIENTS clients, $SECS s, one instance" >&2
start load "${MODEL[@]}" -t 2 --slots 2 --queue 4 --request-timeout 5; url=$URL
node "$ROOT/bench/server_load.mjs" --url "$url" --clients "$CLIENTS" --seconds "$SECS" --json "$OUT/load.json" >/dev/null
stop_all

for phase in inline upload; do
  echo "== time to first token, $phase" >&2
  start "ttft-$phase" "${MODEL[@]}" -t 2; url=$URL
  node "$ROOT/bench/server_load.mjs" --url "$url" --phase "$phase" --typing-ms 1500 --json "$OUT/ttft-$phase.json" >/dev/null
  stop_all
done

echo "== nginx, two instances" >&2
start nginx-a "${MODEL[@]}" -t 1 --slots 2 --queue 4; a=$URL
start nginx-b "${MODEL[@]}" -t 1 --slots 2 --queue 4; b=$URL
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d); chmod 755 "$dir"  # nginx workers (an unprivileged user when started as root) write request bodies here
sed -e "s|server 127.0.0.1:8081|server ${a#http://}|; s|server 127.0.0.1:8082|server ${b#http://}|; s|listen 127.0.0.1:8080|listen 127.0.0.1:$port|" \
  "$ROOT/deploy/nginx/edgevlm.conf" >"$dir/site.conf"
cat >"$dir/nginx.conf" <<NGINX
daemon off; worker_processes 1; pid $dir/nginx.pid; error_log $dir/error.log;
events { worker_connections 512; }
http { access_log off; client_body_temp_path $dir/body; proxy_temp_path $dir/proxy; fastcgi_temp_path $dir/f;
       uwsgi_temp_path $dir/u; scgi_temp_path $dir/s; include $dir/site.conf; }
NGINX
/usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" & PIDS+=($!)
sleep 1
node "$ROOT/bench/server_load.mjs" --url "http://127.0.0.1:$port" --clients "$CLIENTS" --seconds "$((SECS / 2))" \
  --conversation-header --no-slow-client --json "$OUT/nginx.json" >"$OUT/nginx.out" || { echo "run_server_bench: the load through nginx failed:" >&2; cat "$OUT/nginx.out" >&2; exit 1; }
stop_all

python3 - "$OUT" <<'PY'
import json, sys, os, platform
out = sys.argv[1]
load = json.load(open(f"{out}/load.json")); ng = json.load(open(f"{out}/nginx.json"))
inl = json.load(open(f"{out}/ttft-inline.json")); up = json.load(open(f"{out}/ttft-upload.json"))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
rows = [
  "| run | requests | answered | 429 | errors | TTFT p50 / p99 (ms) | decode tok/s (median) | prompt-cache hits | RSS after warm-up → end (MiB) |",
  "|---|---|---|---|---|---|---|---|---|"]
for name, r in (("one instance", load), ("nginx + 2 instances", ng)):
  rows.append(f"| {name} | {r['requests']} | {r['answered']} | {r['rejected429']} | {len(r['errors'])} | "
              f"{r['ttftP50Ms']:.0f} / {r['ttftP99Ms']:.0f} | {r['decodeTokSMedian']:.0f} | {r['promptCacheHits']} | "
              f"{r['rssMiB']['afterWarmup']:.1f} → {r['rssMiB']['end']:.1f} |")
md = [f"CPU: {cpu}, {os.cpu_count()} cores; {load['clients']} clients for {load['seconds']} s (nginx: half).", ""] + rows + [
  "", f"Disconnecting clients: {load['disconnects']} (server-side cancels {load['cancelledServerSide']:.0f}); "
  f"oversized body: {load['oversized']}; slow client (a byte a second): {load['slowClient']['status']} after "
  f"{load['slowClient']['seconds']:.1f} s.", "",
  f"Time to first token, typing {inl['typingMs']} ms after picking the image (median of {len(inl['ttftMs'])} images): "
  f"image sent with the question {inl['ttftMedianMs']:.0f} ms; uploaded at once (POST /v1/images) {up['ttftMedianMs']:.0f} ms."]
open(f"{out}/results.md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY
