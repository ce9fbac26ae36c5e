#!/usr/bin/env bash
# Peak resident memory of a repository server (`cairn server start`) with 1 and with N clients backing up
# and then restoring 256 MiB each of distinct data at the same time. Prints both peaks and the increment
# per additional client, which docs/PROTOCOL.md bounds (32 MiB per client).
#
#   benches/server_memory.sh [--clients N]     (default 4)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
clients=4
[[ ${1:-} == --clients ]] && clients=$2
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p cairn-cli
cairn="$root/target/release/cairn"
export CAIRN_DISABLE_KEYRING=1
work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-server-memory.XXXXXX")
trap 'pkill -f "$work/server.cfg" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"

make_source() { # 8 random + 8 text-like files of 16 MiB, distinct per client
    python3 - "$1" <<'PY'
import os, random, sys
i = int(sys.argv[1]); r = random.Random(i); d = f"src{i}"; os.makedirs(d, exist_ok=True)
for f in range(8):
    open(f"{d}/random{f}", "wb").write(r.randbytes(16 << 20))
    words = [f"w{r.randint(0, 99999)}".encode() for _ in range(200000)]
    open(f"{d}/text{f}", "wb").write(b" ".join(words * 14)[: 16 << 20])
PY
}

# Peak RSS in KiB of a server serving $1 concurrent clients.
peak() {
    local n=$1 pids="" i
    rm -rf served server.cfg c*.cfg out* server.log
    CAIRN_PASSWORD=repo "$cairn" --config-file server.cfg repository create filesystem --path served 2>/dev/null
    for i in $(seq "$n"); do
        [[ -d src$i ]] || make_source "$i"
        CAIRN_PASSWORD=repo "$cairn" --config-file server.cfg server user add "u$i@h" --user-password pw 2>/dev/null
    done
    CAIRN_PASSWORD=repo "$cairn" --config-file "$work/server.cfg" server start --address 127.0.0.1:0 \
        --tls-generate-cert 2>server.log &
    local server=$!
    for _ in $(seq 100); do grep -q "SERVER ADDRESS" server.log && break; sleep 0.1; done
    local fp url
    fp=$(awk '/SERVER CERT SHA256/{print $4}' server.log)
    url=$(awk '/SERVER ADDRESS/{print $3}' server.log)
    for i in $(seq "$n"); do
        CAIRN_PASSWORD=pw "$cairn" --config-file "c$i.cfg" repository connect server --url "$url" \
            --server-cert-fingerprint "$fp" --override-username "u$i" --override-hostname h 2>/dev/null
    done
    for i in $(seq "$n"); do
        CAIRN_PASSWORD=pw "$cairn" --config-file "c$i.cfg" snapshot create "src$i" >/dev/null 2>&1 & pids="$pids $!"
    done
    wait $pids; pids=""
    for i in $(seq "$n"); do
        CAIRN_PASSWORD=pw "$cairn" --config-file "c$i.cfg" restore latest "out$i" >/dev/null 2>&1 & pids="$pids $!"
    done
    wait $pids
    for i in $(seq "$n"); do cmp -s "src$i/text0" "out$i/text0" || { echo "restore $i differs" >&2; exit 1; }; done
    awk '/VmHWM/{print $2}' "/proc/$server/status"
    kill -INT "$server"; wait "$server" 2>/dev/null || true
}

one=$(peak 1)
many=$(peak "$clients")
echo "| clients | server peak RSS |"
echo "|--:|--:|"
echo "| 1 | $((one / 1024)) MiB |"
echo "| $clients | $((many / 1024)) MiB |"
echo "per additional client: $(((many - one) / 1024 / (clients - 1))) MiB"
