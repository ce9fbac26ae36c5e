#!/usr/bin/env bash
# Backup (and restore) throughput to an S3 server versus the filesystem backend, on the same corpus.
#
#   benches/s3.sh [--size-mib N] [--runs N] [--cairn-bin PATH]
#
# Generates a deterministic corpus with benches/corpus.py (default 200 MiB) in a temporary folder, starts
# moto's S3 server on loopback (scripts/s3-test-server.sh), then for each run and each backend: creates a
# repository, times a first backup, times a full restore and checks it against the corpus's manifest.
# moto is a Python server keeping objects in memory: it measures Cairn's S3 path (signing, HTTP, the
# decorators), not what a real object store would sustain.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
SIZE_MIB=200
RUNS=1
CAIRN_BIN=""
while [ $# -gt 0 ]; do
    case "$1" in
        --size-mib) SIZE_MIB=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --cairn-bin) CAIRN_BIN=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

if [ -z "$CAIRN_BIN" ]; then
    cargo build --release -p cairn-cli --manifest-path "$REPO_ROOT/Cargo.toml" >&2
    CAIRN_BIN="$REPO_ROOT/target/release/cairn"
fi

WORK=$(mktemp -d -t cairn-s3-bench-XXXXXX)
# shellcheck source=../scripts/s3-test-server.sh
source "$REPO_ROOT/scripts/s3-test-server.sh"
cleanup() { stop_s3_test_server; rm -rf "$WORK"; }
trap cleanup EXIT

python3 "$SCRIPT_DIR/corpus.py" "$WORK/corpus" --size-mib "$SIZE_MIB" >&2
python3 "$SCRIPT_DIR/corpus.py" "$WORK/corpus" --manifest "$WORK/expected.manifest"
start_s3_test_server

export CAIRN_PASSWORD=cairn-bench-password CAIRN_DISABLE_KEYRING=1
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
now() { date +%s.%N; }
rows=()
for run in $(seq 1 "$RUNS"); do
    for backend in filesystem s3; do
        dir="$WORK/$backend-$run"
        mkdir -p "$dir"
        cairn() { "$CAIRN_BIN" --config-file "$dir/repository.config" "$@"; }
        export XDG_CACHE_HOME="$dir/cache"
        if [ "$backend" = filesystem ]; then
            cairn repository create filesystem --path "$dir/repo" 2>/dev/null
        else
            cairn repository create s3 --bucket "$CAIRN_TEST_S3_BUCKET" --prefix "bench-$run" \
                --endpoint "$CAIRN_TEST_S3_ENDPOINT" --region us-east-1 2>/dev/null
        fi
        start=$(now)
        cairn snapshot create "$WORK/corpus" --json >"$dir/backup.json"
        backup_s=$(python3 -c "print(f'{$(now) - $start:.2f}')")
        bytes=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['stats']['bytes'])" "$dir/backup.json")
        start=$(now)
        cairn restore latest "$dir/restored" >/dev/null
        restore_s=$(python3 -c "print(f'{$(now) - $start:.2f}')")
        python3 "$SCRIPT_DIR/corpus.py" "$dir/restored" --manifest "$dir/restored.manifest"
        if cmp -s "$WORK/expected.manifest" "$dir/restored.manifest"; then same=yes; else same=NO; fi
        rows+=("$(python3 -c "
b, bs, rs = $bytes, $backup_s, $restore_s
print(f'| $backend | $run | {b / 2**20:.0f} MiB | {bs:.2f} s ({b / bs / 1e6:.0f} MB/s) | {rs:.2f} s ({b / rs / 1e6:.0f} MB/s) | $same |')")")
        rm -rf "$dir/restored"
    done
done

echo "| backend | run | corpus | initial backup | full restore | restore identical |"
echo "|---|--:|--:|--:|--:|---|"
printf '%s\n' "${rows[@]}"
