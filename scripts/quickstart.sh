#!/usr/bin/env bash
# One command: build Cairn, create an encrypted repository on the local filesystem, back up a folder,
# back it up again (incremental), list the snapshots, restore the latest one and check it is identical.
#
#   scripts/quickstart.sh [FOLDER]       (default: /usr/share/doc, else this source tree's engine/)
#
# Everything it creates lives in a temporary folder that is printed at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
default=/usr/share/doc
[[ -d $default ]] || default="$root/engine"
src=$(realpath "${1:-$default}")
work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-quickstart.XXXXXX")

cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p cairn-cli
cairn() { "$root/target/release/cairn" --config-file "$work/repository.config" "$@"; }
export CAIRN_PASSWORD=${CAIRN_PASSWORD:-quickstart-password}

cairn repository create filesystem --path "$work/repository"
cairn snapshot create "$src"
cairn snapshot create "$src"
cairn snapshot list
cairn repository status
cairn restore latest "$work/restored"
# Compare contents (the source may have changed while we ran if it is live).
if diff -r --no-dereference "$src" "$work/restored" >/dev/null; then
    echo "Restored tree is identical to $src"
else
    echo "Restored tree differs from $src (was it modified during the run?)" >&2
    exit 1
fi
echo "Repository, config and restore are in $work"
