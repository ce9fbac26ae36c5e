#!/usr/bin/env bash
# Backup and restore of the same tree directly into a filesystem repository and through a repository
# server on loopback (QUIC), in the same run. Prints wall times, throughput, the server path's share of
# the direct path, the CPU seconds each side used, the bytes the client sent (chunk payload and UDP), and
# the share the server path could reach at best on shared cores given the CPU both sides used.
#
#   benches/server_vs_direct.sh [--size-mib N] [--corpus DIR] [--pin] [--runs N] [--prefault-mib N]
#
# By default client and server share all cores, so the server path pays for both sides' work on the same
# cores. --pin models separate machines instead: the direct runs and the client get the first half of the
# cores (taskset), the server the other half. --runs N (default 1) repeats direct and served runs in turn
# (fresh repositories each time) and reports medians with the range. Before each measured command it writes
# and releases --prefault-mib of memory (default twice the corpus; 0 turns it off), as compare.sh does.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
size=1024
corpus=""
pin=no
runs=1
prefault=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --size-mib) size=$2; shift 2 ;;
        --corpus) corpus=$2; shift 2 ;;
        --pin) pin=yes; shift ;;
        --runs) runs=$2; shift 2 ;;
        --prefault-mib) prefault=$2; shift 2 ;;
        *) echo "usage: $0 [--size-mib N] [--corpus DIR] [--pin] [--runs N] [--prefault-mib N]" >&2; exit 2 ;;
    esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "--runs takes a positive number" >&2; exit 2; }
[[ -z $prefault || $prefault =~ ^[0-9]+$ ]] || { echo "--prefault-mib takes a number" >&2; exit 2; }
client_on=() server_on=()
if [[ $pin == yes ]]; then
    cores=$(nproc)
    (( cores >= 2 )) || { echo "--pin needs at least 2 cores" >&2; exit 1; }
    client_on=(taskset -c "0-$(( cores / 2 - 1 ))") server_on=(taskset -c "$(( cores / 2 ))-$(( cores - 1 ))")
fi
[[ -x /usr/bin/time ]] || { echo "$0 needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-server-bench.XXXXXX")
trap '[[ -n ${server_pid:-} ]] && kill "$server_pid" 2>/dev/null; rm -rf "$work"' EXIT
if [[ -z $corpus ]]; then
    corpus="${TMPDIR:-/tmp}/cairn-bench-corpus-${size}MiB"
    [[ -d $corpus ]] || python3 "$root/benches/corpus.py" "$corpus" --size-mib "$size" --quiet
fi
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p cairn-cli
cairn="$root/target/release/cairn"
export CAIRN_DISABLE_KEYRING=1
bytes=$(du -sb "$corpus" | cut -f1)
[[ -n $prefault ]] || prefault=$(( 2 * bytes >> 20 ))
prefault=$(( 10#$prefault ))
now() { date +%s.%N; }
# CPU seconds: of a client command (user + system, from /usr/bin/time), and of the server so far (/proc).
timed() { local out=$1; shift; /usr/bin/time -f '%U %S' -o "$work/$out.cpu" "${client_on[@]}" "$@"; }
cpu_of() { awk '{print $(NF-1) + $NF}' "$work/$1.cpu" | tail -n1; }
server_cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$server_pid/stat"; }
warm() { find "$corpus" -type f -exec cat {} + >/dev/null; }
# Before each measured command: write-back of earlier runs finished, and memory touched and released, so no
# run pays for memory a virtual machine's balloon driver handed back to its host (benches/README.md).
settle() {
    sync
    (( prefault > 0 )) || return 0
    python3 "$root/benches/prefault.py" "$prefault" || echo "(could not prefault $prefault MiB of memory; continuing)" >&2
}
# UDP bytes the client sent and received, from its debug log line about the connection.
wire() { sed -n 's/.*datagrams sent (\([0-9]*\) bytes), [0-9]* received (\([0-9]*\) bytes).*/\1 \2/p' "$1" | tail -n1; }
identical() { diff -r --no-dereference "$corpus" "$1" >/dev/null && echo yes || echo NO; }

results="$work/results.tsv"
for run in $(seq "$runs"); do
    rm -rf "$work/direct" "$work/served" "$work"/*.cfg "$work/direct-out" "$work/server-out"
    # Direct.
    CAIRN_PASSWORD=repo "$cairn" --config-file "$work/direct.cfg" repository create filesystem --path "$work/direct" 2>/dev/null
    warm; settle; t0=$(now)
    CAIRN_PASSWORD=repo timed direct-backup "$cairn" --config-file "$work/direct.cfg" snapshot create "$corpus" --json >"$work/direct.json"
    t1=$(now); settle; r1=$(now)
    CAIRN_PASSWORD=repo timed direct-restore "$cairn" --config-file "$work/direct.cfg" restore latest "$work/direct-out" 2>/dev/null
    t2=$(now)

    # Through the server.
    CAIRN_PASSWORD=repo "$cairn" --config-file "$work/server.cfg" repository create filesystem --path "$work/served" 2>/dev/null
    CAIRN_PASSWORD=repo "$cairn" --config-file "$work/server.cfg" server user add bench@host --user-password pw 2>/dev/null
    CAIRN_PASSWORD=repo "${server_on[@]}" "$cairn" --config-file "$work/server.cfg" server start --address 127.0.0.1:0 \
        --tls-generate-cert --tls-cert-file "$work/cert.pem" --tls-key-file "$work/key.pem" 2>"$work/server.log" &
    server_pid=$!
    for _ in $(seq 100); do grep -q "SERVER ADDRESS" "$work/server.log" && break; sleep 0.1; done
    fp=$(awk '/SERVER CERT SHA256/{print $4}' "$work/server.log")
    url=$(awk '/SERVER ADDRESS/{print $3}' "$work/server.log")
    CAIRN_PASSWORD=pw "$cairn" --config-file "$work/client.cfg" repository connect server --url "$url" \
        --server-cert-fingerprint "$fp" --override-username bench --override-hostname host 2>/dev/null
    warm; settle; c3=$(server_cpu); t3=$(now)
    CAIRN_PASSWORD=pw timed server-backup "$cairn" --log-level debug --config-file "$work/client.cfg" \
        snapshot create "$corpus" --json >"$work/server.json" 2>"$work/server-backup.log"
    t4=$(now); c4=$(server_cpu); settle; r4=$(now)
    CAIRN_PASSWORD=pw timed server-restore "$cairn" --log-level debug --config-file "$work/client.cfg" \
        restore latest "$work/server-out" 2>"$work/server-restore.log"
    t5=$(now); c5=$(server_cpu)
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
    rm -f "$work/cert.pem" "$work/key.pem"

    same=$( [[ $(identical "$work/direct-out") == yes && $(identical "$work/server-out") == yes ]] && echo yes || echo NO)
    python3 - "$t0" "$t1" "$r1" "$t2" "$t3" "$t4" "$r4" "$t5" "$c3" "$c4" "$c5" "$work" "$same" \
        "$(cpu_of direct-backup)" "$(cpu_of direct-restore)" "$(cpu_of server-backup)" "$(cpu_of server-restore)" \
        "$(wire "$work/server-backup.log")" "$(wire "$work/server-restore.log")" >>"$results" <<'PY'
import json, sys
a = sys.argv[1:]
# t: direct backup start, end, restore start, end; served backup start, end, restore start, end.
t, c, work, same = list(map(float, a[0:8])), list(map(float, a[8:11])), a[11], a[12]
cpu = list(map(float, a[13:17]))
wire_b, wire_r = (a[17].split() or ["0", "0"]), (a[18].split() or ["0", "0"])
payload = json.load(open(f"{work}/server.json"))["stats"]["bytesStored"]
stored = json.load(open(f"{work}/direct.json"))["stats"]["bytesStored"]
# phase, direct s, server s, CPU direct, CPU client, CPU server, UDP sent, UDP received, payload, stored, same
print("\t".join(map(str, ["backup", t[1] - t[0], t[5] - t[4], cpu[0], cpu[2], c[1] - c[0],
                          wire_b[0], wire_b[1], payload, stored, same])))
print("\t".join(map(str, ["restore", t[3] - t[2], t[7] - t[6], cpu[1], cpu[3], c[2] - c[1],
                          wire_r[0], wire_r[1], 0, 0, same])))
PY
    tail -n 2 "$results" | awk -v run="$run" -v runs="$runs" '
        { line = line sprintf("%s%s %.2f s direct, %.2f s served (%.0f %%)", NR > 1 ? "; " : "", $1, $2, $3, $2 / $3 * 100) }
        END { printf "run %s of %s: %s\n", run, runs, line }' >&2
done

python3 - "$bytes" "$results" "$runs" "$pin" \
    "$([[ $pin == yes ]] && echo "client ${client_on[2]}, server ${server_on[2]} (--pin)" || echo "shared")" <<'PY'
import statistics, sys
b, path, runs, pinned, cores = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4] == "yes", sys.argv[5]
rows = [line.rstrip("\n").split("\t") for line in open(path)]
med = statistics.median
def fmt(values, f="{:.2f}"):
    m = f.format(med(values))
    return m if len(values) == 1 else f"{m} ({f.format(min(values))}-{f.format(max(values))})"
same = all(r[10] == "yes" for r in rows)
print(f"corpus: {b/2**20:.0f} MiB; runs: {runs} (median, range); restores identical: {'yes' if same else 'NO'}; "
      f"cores: {cores}")
print("| phase | direct s | direct MB/s | server s | server MB/s | server/direct | CPU s direct "
      "| CPU s client + server | best share the CPU allows | UDP MiB client sent / received |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
for phase in ("backup", "restore"):
    r = [list(map(float, x[1:10])) for x in rows if x[0] == phase]
    d, s = [x[0] for x in r], [x[1] for x in r]
    share = [x[0] / x[1] * 100 for x in r]
    # The share the server path would reach if it kept its cores as busy as the direct run keeps its own:
    # sharing cores, client and server compete for them, so the direct run's CPU over both sides' CPU; pinned,
    # each side has its own cores, so the direct run's CPU over the busier side's.
    ceiling = [x[2] / (max(x[3], x[4]) if pinned else x[3] + x[4]) * 100 for x in r]
    print(f"| {phase} | {fmt(d)} | {b/1e6/med(d):.0f} | {fmt(s)} | {b/1e6/med(s):.0f} | {fmt(share, '{:.0f}')} % "
          f"| {fmt([x[2] for x in r])} | {med([x[3] for x in r]):.2f} + {med([x[4] for x in r]):.2f} "
          f"| {fmt(ceiling, '{:.0f}')} % | {med([x[5] for x in r])/2**20:.0f} / {med([x[6] for x in r])/2**20:.0f} |")
backup = [list(map(float, x[1:10])) for x in rows if x[0] == "backup"]
print(f"chunk payload sent by the client: {med([x[7] for x in backup])/2**20:.0f} MiB "
      f"(compressed; the direct backup stored {med([x[8] for x in backup])/2**20:.0f} MiB encrypted)")
if not same:
    sys.exit("a restore differed from the corpus")
PY
