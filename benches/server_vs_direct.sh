#!/usr/bin/env bash
# Backup and restore of the same tree directly into a filesystem repository and through a repository
# server on loopback (QUIC), in the same run. Prints wall times, throughput, the server path's share of
# the direct path, and the bytes the client sent.
#
#   benches/server_vs_direct.sh [--size-mib N] [--corpus DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
size=1024
corpus=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --size-mib) size=$2; shift 2 ;;
        --corpus) corpus=$2; shift 2 ;;
        *) echo "usage: $0 [--size-mib N] [--corpus DIR]" >&2; exit 2 ;;
    esac
done
work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-server-bench.XXXXXX")
trap 'kill ${server_pid:-0} 2>/dev/null || true; rm -rf "$work"' EXIT
if [[ -z $corpus ]]; then
    corpus="${TMPDIR:-/tmp}/cairn-bench-corpus-${size}MiB"
    [[ -d $corpus ]] || python3 "$root/benches/corpus.py" "$corpus" --size-mib "$size" --quiet
fi
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p cairn-cli
cairn="$root/target/release/cairn"
export CAIRN_DISABLE_KEYRING=1
bytes=$(du -sb "$corpus" | cut -f1)
now() { date +%s.%N; }
warm() { find "$corpus" -type f -exec cat {} + >/dev/null; }

# Direct.
CAIRN_PASSWORD=repo "$cairn" --config-file "$work/direct.cfg" repository create filesystem --path "$work/direct" 2>/dev/null
warm; t0=$(now)
CAIRN_PASSWORD=repo "$cairn" --config-file "$work/direct.cfg" snapshot create "$corpus" --json >"$work/direct.json"
t1=$(now)
CAIRN_PASSWORD=repo "$cairn" --config-file "$work/direct.cfg" restore latest "$work/direct-out" 2>/dev/null
t2=$(now)

# Through the server.
CAIRN_PASSWORD=repo "$cairn" --config-file "$work/server.cfg" repository create filesystem --path "$work/served" 2>/dev/null
CAIRN_PASSWORD=repo "$cairn" --config-file "$work/server.cfg" server user add bench@host --user-password pw 2>/dev/null
CAIRN_PASSWORD=repo "$cairn" --config-file "$work/server.cfg" server start --address 127.0.0.1:0 --tls-generate-cert 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do grep -q "SERVER ADDRESS" "$work/server.log" && break; sleep 0.1; done
fp=$(awk '/SERVER CERT SHA256/{print $4}' "$work/server.log")
url=$(awk '/SERVER ADDRESS/{print $3}' "$work/server.log")
CAIRN_PASSWORD=pw "$cairn" --config-file "$work/client.cfg" repository connect server --url "$url" \
    --server-cert-fingerprint "$fp" --override-username bench --override-hostname host 2>/dev/null
warm; t3=$(now)
CAIRN_PASSWORD=pw "$cairn" --config-file "$work/client.cfg" snapshot create "$corpus" --json >"$work/server.json"
t4=$(now)
CAIRN_PASSWORD=pw "$cairn" --config-file "$work/client.cfg" restore latest "$work/server-out" 2>/dev/null
t5=$(now)
diff -r --no-dereference "$corpus" "$work/server-out" >/dev/null && diff -r --no-dereference "$corpus" "$work/direct-out" >/dev/null \
    && identical=yes || identical=NO

python3 - "$bytes" "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$work/direct.json" "$work/server.json" "$identical" <<'PY'
import json, sys
b = int(sys.argv[1]); t = list(map(float, sys.argv[2:8]))
direct, served = json.load(open(sys.argv[8])), json.load(open(sys.argv[9]))
rows = [("backup", t[1]-t[0], t[4]-t[3]), ("restore", t[2]-t[1], t[5]-t[4])]
print(f"corpus: {b/2**20:.0f} MiB; restores identical: {sys.argv[10]}")
print("| phase | direct s | direct MB/s | server s | server MB/s | server/direct throughput |")
print("|---|--:|--:|--:|--:|--:|")
for name, d, s in rows:
    print(f"| {name} | {d:.2f} | {b/1e6/d:.0f} | {s:.2f} | {b/1e6/s:.0f} | {d/s*100:.0f} % |")
print(f"chunk payload sent by the client: {served['stats']['bytesStored']/2**20:.0f} MiB "
      f"(compressed; the direct backup stored {direct['stats']['bytesStored']/2**20:.0f} MiB encrypted)")
PY
