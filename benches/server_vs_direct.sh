#!/usr/bin/env bash
# Backup and restore of the same tree directly into a filesystem repository and through a repository
# server on loopback (QUIC), in the same run. Prints wall times, throughput, the server path's share of
# the direct path, the CPU seconds each side used, and the bytes the client sent.
#
#   benches/server_vs_direct.sh [--size-mib N] [--corpus DIR] [--pin]
#
# By default client and server share all cores, so the server path pays for both sides' work on the same
# cores. --pin models separate machines instead: the direct runs and the client get the first half of the
# cores (taskset), the server the other half.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
size=1024
corpus=""
pin=no
while [[ $# -gt 0 ]]; do
    case $1 in
        --size-mib) size=$2; shift 2 ;;
        --corpus) corpus=$2; shift 2 ;;
        --pin) pin=yes; shift ;;
        *) echo "usage: $0 [--size-mib N] [--corpus DIR] [--pin]" >&2; exit 2 ;;
    esac
done
client_on=() server_on=()
if [[ $pin == yes ]]; then
    cores=$(nproc)
    (( cores >= 2 )) || { echo "--pin needs at least 2 cores" >&2; exit 1; }
    client_on=(taskset -c "0-$(( cores / 2 - 1 ))") server_on=(taskset -c "$(( cores / 2 ))-$(( cores - 1 ))")
fi
[[ -x /usr/bin/time ]] || { echo "$0 needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
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
# CPU seconds: of a client command (user + system, from /usr/bin/time), and of the server so far (/proc).
timed() { local out=$1; shift; /usr/bin/time -f '%U %S' -o "$work/$out.cpu" "${client_on[@]}" "$@"; }
server_cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$server_pid/stat"; }
warm() { find "$corpus" -type f -exec cat {} + >/dev/null; }

# Direct.
CAIRN_PASSWORD=repo "$cairn" --config-file "$work/direct.cfg" repository create filesystem --path "$work/direct" 2>/dev/null
warm; t0=$(now)
CAIRN_PASSWORD=repo timed direct-backup "$cairn" --config-file "$work/direct.cfg" snapshot create "$corpus" --json >"$work/direct.json"
t1=$(now)
CAIRN_PASSWORD=repo timed direct-restore "$cairn" --config-file "$work/direct.cfg" restore latest "$work/direct-out" 2>/dev/null
t2=$(now)

# Through the server.
CAIRN_PASSWORD=repo "$cairn" --config-file "$work/server.cfg" repository create filesystem --path "$work/served" 2>/dev/null
CAIRN_PASSWORD=repo "$cairn" --config-file "$work/server.cfg" server user add bench@host --user-password pw 2>/dev/null
CAIRN_PASSWORD=repo "${server_on[@]}" "$cairn" --config-file "$work/server.cfg" server start --address 127.0.0.1:0 --tls-generate-cert 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do grep -q "SERVER ADDRESS" "$work/server.log" && break; sleep 0.1; done
fp=$(awk '/SERVER CERT SHA256/{print $4}' "$work/server.log")
url=$(awk '/SERVER ADDRESS/{print $3}' "$work/server.log")
CAIRN_PASSWORD=pw "$cairn" --config-file "$work/client.cfg" repository connect server --url "$url" \
    --server-cert-fingerprint "$fp" --override-username bench --override-hostname host 2>/dev/null
warm; c3=$(server_cpu); t3=$(now)
CAIRN_PASSWORD=pw timed server-backup "$cairn" --config-file "$work/client.cfg" snapshot create "$corpus" --json >"$work/server.json"
t4=$(now); c4=$(server_cpu)
CAIRN_PASSWORD=pw timed server-restore "$cairn" --config-file "$work/client.cfg" restore latest "$work/server-out" 2>/dev/null
t5=$(now); c5=$(server_cpu)
diff -r --no-dereference "$corpus" "$work/server-out" >/dev/null && diff -r --no-dereference "$corpus" "$work/direct-out" >/dev/null \
    && identical=yes || identical=NO

python3 - "$bytes" "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$work/direct.json" "$work/server.json" "$identical" \
    "$work" "$c3" "$c4" "$c5" \
    "$([[ $pin == yes ]] && echo "client ${client_on[2]}, server ${server_on[2]} (--pin)" || echo "shared")" <<'PY'
import json, sys
b = int(sys.argv[1]); t = list(map(float, sys.argv[2:8]))
direct, served = json.load(open(sys.argv[8])), json.load(open(sys.argv[9]))
work, c = sys.argv[11], list(map(float, sys.argv[12:15]))
cpu = lambda name: sum(map(float, open(f"{work}/{name}.cpu").read().split()[-2:]))
rows = [("backup", t[1]-t[0], t[4]-t[3], cpu("direct-backup"), cpu("server-backup"), c[1]-c[0]),
        ("restore", t[2]-t[1], t[5]-t[4], cpu("direct-restore"), cpu("server-restore"), c[2]-c[1])]
print(f"corpus: {b/2**20:.0f} MiB; restores identical: {sys.argv[10]}; cores: {sys.argv[15]}")
print("| phase | direct s | direct MB/s | server s | server MB/s | server/direct throughput "
      "| CPU s direct | CPU s client + server |")
print("|---|--:|--:|--:|--:|--:|--:|--:|")
for name, d, s, dc, cc, sc in rows:
    print(f"| {name} | {d:.2f} | {b/1e6/d:.0f} | {s:.2f} | {b/1e6/s:.0f} | {d/s*100:.0f} % "
          f"| {dc:.2f} | {cc:.2f} + {sc:.2f} |")
print(f"chunk payload sent by the client: {served['stats']['bytesStored']/2**20:.0f} MiB "
      f"(compressed; the direct backup stored {direct['stats']['bytesStored']/2**20:.0f} MiB encrypted)")
PY
