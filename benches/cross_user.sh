#!/usr/bin/env bash
# Two users back up the same tree through one repository server on loopback: the second proves it holds
# each chunk (a 32-byte keyed hash) instead of sending it. Prints each backup's wall time, client and server
# CPU, UDP bytes the client sent and the bytes stored, then checks the second user's restore.
#
#   benches/cross_user.sh [--corpus DIR] [--size-mib N]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
size=1024
corpus=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --corpus) corpus=$2; shift 2 ;;
        --size-mib) size=$2; shift 2 ;;
        *) echo "usage: $0 [--corpus DIR] [--size-mib N]" >&2; exit 2 ;;
    esac
done
[[ -x /usr/bin/time ]] || { echo "$0 needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
if [[ -z $corpus ]]; then
    corpus="${TMPDIR:-/tmp}/cairn-bench-corpus-${size}MiB"
    [[ -d $corpus ]] || python3 "$root/benches/corpus.py" "$corpus" --size-mib "$size" --quiet
fi
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p cairn-cli
cairn="$root/target/release/cairn"
work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-cross-user.XXXXXX")
trap '[[ -n ${pid:-} ]] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
export CAIRN_DISABLE_KEYRING=1
CAIRN_PASSWORD=repo "$cairn" --config-file "$work/server.cfg" repository create filesystem --path "$work/repo" 2>/dev/null
for u in alice bob; do
    CAIRN_PASSWORD=repo "$cairn" --config-file "$work/server.cfg" server user add "$u@host" --user-password pw 2>/dev/null
done
CAIRN_PASSWORD=repo "$cairn" --config-file "$work/server.cfg" server start --address 127.0.0.1:0 --tls-generate-cert \
    --tls-cert-file "$work/cert.pem" --tls-key-file "$work/key.pem" 2>"$work/server.log" &
pid=$!
for _ in $(seq 100); do grep -q "SERVER ADDRESS" "$work/server.log" && break; sleep 0.1; done
fp=$(awk '/SERVER CERT SHA256/{print $4}' "$work/server.log")
url=$(awk '/SERVER ADDRESS/{print $3}' "$work/server.log")
server_cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$pid/stat"; }
for u in alice bob; do
    CAIRN_PASSWORD=pw "$cairn" --config-file "$work/$u.cfg" repository connect server --url "$url" \
        --server-cert-fingerprint "$fp" --override-username "$u" --override-hostname host 2>/dev/null
    find "$corpus" -type f -exec cat {} + >/dev/null
    c0=$(server_cpu); t0=$(date +%s.%N)
    CAIRN_PASSWORD=pw /usr/bin/time -f '%U %S' -o "$work/$u.cpu" "$cairn" --log-level debug --config-file "$work/$u.cfg" \
        snapshot create "$corpus" --json >"$work/$u.json" 2>"$work/$u.log"
    t1=$(date +%s.%N); c1=$(server_cpu)
    udp=$(sed -n 's/.*datagrams sent (\([0-9]*\) bytes).*/\1/p' "$work/$u.log" | tail -n1)
    python3 - "$u" "$t0" "$t1" "$c0" "$c1" "$work/$u.cpu" "$work/$u.json" "${udp:-0}" "$(du -sb "$work/repo/p" | cut -f1)" <<'PY'
import json, sys
u, t0, t1, c0, c1, cpu, js, udp, packs = sys.argv[1:]
client = sum(map(float, open(cpu).read().split()[-2:]))
stored = json.load(open(js))["stats"]["bytesStored"]
print(f"{u}: {float(t1) - float(t0):.2f} s, client CPU {client:.2f} s, server CPU {float(c1) - float(c0):.2f} s, "
      f"UDP sent {int(udp) / 1e6:.1f} MB, chunk bytes sent {stored / 1e6:.1f} MB, data packs {int(packs) / 1e6:.1f} MB")
PY
done
CAIRN_PASSWORD=pw "$cairn" --config-file "$work/bob.cfg" restore latest "$work/out" 2>/dev/null
diff -r --no-dereference "$corpus" "$work/out" >/dev/null && echo "bob's restore: identical" || { echo "bob's restore DIFFERS"; exit 1; }
