#!/usr/bin/env bash
# End-to-end comparison of Cairn against restic (and rustic / Borg when on PATH).
#
#   benches/compare.sh [--size-mib N] [--runs N] [--out DIR] [--keep]
#
# See benches/README.md. In short: builds cairn (release), generates (or reuses) a
# deterministic corpus outside the work tree, then for each tool, interleaved phase by
# phase: initial backup, re-backup with no change, backup after a ~2 % mutation of the
# corpus, full restore into an empty folder (checked to be identical). Records wall
# time, MB/s, speed-up versus restic, peak RSS and repository size; prints a markdown
# table and writes CSV and JSON into the output folder (default benches/results/).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
CORPUS_PY="$SCRIPT_DIR/corpus.py"

SIZE_MIB=1024
RUNS=1
OUT_DIR="$SCRIPT_DIR/results"
KEEP=0
TOOLS_ARG=""        # hidden: --tools cairn,restic,rustic,borg
CORPUS_BASE=""      # hidden: --corpus-dir DIR (cached pristine corpus)
PREFAULT_MIB=""     # --prefault-mib N (default: twice the corpus size; 0 turns it off)
CAIRN_BIN=""        # hidden: --cairn-bin PATH (skips the cargo build)
MUTATE_PERCENT=2
SEED=20240601
PASSWORD="cairn-bench-password"
PHASES=(initial unchanged mutated restore)

log() { printf '[compare] %s\n' "$*" >&2; }
die() { printf '[compare] error: %s\n' "$*" >&2; exit 1; }

usage() {
    cat <<'EOF'
Usage: benches/compare.sh [--size-mib N] [--runs N] [--out DIR] [--keep]

  --size-mib N   corpus size in MiB (default 1024)
  --runs N       repeat the whole comparison N times and report medians (default 1)
  --out DIR      where results.{md,csv,json}, results-raw.csv and logs/ go
                 (default benches/results)
  --keep         keep the temporary folder (repositories, restores, caches, logs)

Compares cairn (built with cargo build --release -p cairn-cli) with restic (installed
with apt-get if missing), plus rustic and borg when they are on PATH.
Less common options:
  --tools LIST       comma-separated subset of cairn,restic,rustic,borg
  --cairn-bin PATH   use this cairn binary instead of building one
  --prefault-mib N   MiB of memory written and released before each measured command
                     (default: twice the corpus size; 0 turns it off; see benches/README.md)
  --corpus-dir DIR   where the pristine corpus is cached
                     (default ${TMPDIR:-/tmp}/cairn-bench-corpus-<N>MiB)
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --size-mib) SIZE_MIB=${2:?--size-mib needs a value}; shift 2 ;;
        --runs) RUNS=${2:?--runs needs a value}; shift 2 ;;
        --out) OUT_DIR=${2:?--out needs a value}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --prefault-mib) PREFAULT_MIB=${2:?--prefault-mib needs a value}; shift 2 ;;
        --tools) TOOLS_ARG=${2:?--tools needs a value}; shift 2 ;;
        --cairn-bin) CAIRN_BIN=${2:?--cairn-bin needs a value}; shift 2 ;;
        --corpus-dir) CORPUS_BASE=${2:?--corpus-dir needs a value}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

[[ $SIZE_MIB =~ ^[0-9]+$ && $SIZE_MIB -gt 0 ]] || die "--size-mib must be a positive integer"
[[ $RUNS =~ ^[0-9]+$ && $RUNS -gt 0 ]] || die "--runs must be a positive integer"
SIZE_MIB=$(( 10#$SIZE_MIB ))
[[ -n $PREFAULT_MIB ]] || PREFAULT_MIB=$(( 2 * SIZE_MIB ))
[[ $PREFAULT_MIB =~ ^[0-9]+$ ]] || die "--prefault-mib must be a non-negative integer"
PREFAULT_MIB=$(( 10#$PREFAULT_MIB ))
command -v python3 >/dev/null || die "python3 is required"
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)

TMP_BASE=${TMPDIR:-/tmp}
TMP_BASE=${TMP_BASE%/}
[[ -n $CORPUS_BASE ]] || CORPUS_BASE="$TMP_BASE/cairn-bench-corpus-${SIZE_MIB}MiB"
CORPUS_BASE=$(realpath -m "$CORPUS_BASE")

under_repo() { [[ $(realpath -m "$1")/ == "$REPO_ROOT"/* ]]; }
if under_repo "$CORPUS_BASE" || under_repo "$TMP_BASE"; then
    die "the corpus and temporary files must not be under $REPO_ROOT (set TMPDIR or --corpus-dir)"
fi

# ---------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------

apt_install() {
    local pkg=$1
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "$pkg is missing and this is not root (install it first)"
        sudo=(sudo)
    fi
    log "installing $pkg with apt-get"
    "${sudo[@]}" apt-get install -y "$pkg" >/dev/null ||
        { "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y "$pkg" >/dev/null; } ||
        die "could not install $pkg"
}

[[ -x /usr/bin/time ]] || apt_install time

TOOLS=()
if [[ -n $TOOLS_ARG ]]; then
    IFS=, read -r -a TOOLS <<<"$TOOLS_ARG"
    for t in "${TOOLS[@]}"; do
        case $t in
            cairn|restic) ;;
            rustic|borg) command -v "$t" >/dev/null || die "$t is not on PATH" ;;
            *) die "unknown tool '$t' (known: cairn, restic, rustic, borg)" ;;
        esac
    done
else
    TOOLS=(cairn restic)
    command -v rustic >/dev/null && TOOLS+=(rustic)
    command -v borg >/dev/null && TOOLS+=(borg)
fi
has_tool() { local t; for t in "${TOOLS[@]}"; do [[ $t == "$1" ]] && return 0; done; return 1; }

if has_tool restic && ! command -v restic >/dev/null; then
    apt_install restic
fi

if has_tool cairn; then
    if [[ -z $CAIRN_BIN ]]; then
        command -v cargo >/dev/null || die "cargo is required to build cairn"
        log "building cairn: cargo build --release -p cairn-cli"
        (cd "$REPO_ROOT" && cargo build --release -p cairn-cli) || die "cargo build failed"
        target_dir=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
        [[ $target_dir == /* ]] || target_dir="$REPO_ROOT/$target_dir"
        CAIRN_BIN="$target_dir/release/cairn"
    fi
    [[ -x $CAIRN_BIN ]] || die "cairn binary not found at $CAIRN_BIN"
    CAIRN_BIN=$(realpath "$CAIRN_BIN")
fi

tool_version() {
    case $1 in
        cairn) "$CAIRN_BIN" --version 2>/dev/null | head -n1 || echo "cairn (version unknown)" ;;
        restic) restic version | head -n1 ;;
        rustic) rustic --version 2>/dev/null | head -n1 ;;
        borg) borg --version 2>/dev/null | head -n1 ;;
    esac
}

# ---------------------------------------------------------------------------------------
# Temporary folder
# ---------------------------------------------------------------------------------------

WORK=$(mktemp -d "$TMP_BASE/cairn-bench.XXXXXX")
cleanup() {
    local rc=$?
    if [[ $KEEP -eq 1 ]]; then
        log "kept temporary folder $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------
# Machine
# ---------------------------------------------------------------------------------------

NPROC=$(nproc)
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
[[ -n $CPU_MODEL ]] || CPU_MODEL=$(uname -m)
MEM_KIB=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
MEM_GIB=$(awk -v k="$MEM_KIB" 'BEGIN {printf "%.1f", k / 1048576}')
KERNEL=$(uname -sr)
FS_TYPE=$(df -PT "$TMP_BASE" | awk 'NR == 2 {print $2}')
log "machine: $NPROC CPUs ($CPU_MODEL), ${MEM_GIB} GiB RAM, $KERNEL, $TMP_BASE on $FS_TYPE"

VERSIONS_FILE="$WORK/versions.tsv"
: >"$VERSIONS_FILE"
for t in "${TOOLS[@]}"; do
    printf '%s\t%s\n' "$t" "$(tool_version "$t")" >>"$VERSIONS_FILE"
    log "tool: $t = $(tool_version "$t")"
done

need_kib=$(( SIZE_MIB * 1024 * (3 + ${#TOOLS[@]}) ))
avail_kib=$(df -Pk "$TMP_BASE" | awk 'NR == 2 {print $4}')
if [[ -d $CORPUS_BASE ]]; then need_kib=$(( need_kib - SIZE_MIB * 1024 )); fi
(( avail_kib >= need_kib )) ||
    die "not enough space in $TMP_BASE: need about $(( need_kib / 1024 )) MiB, have $(( avail_kib / 1024 )) MiB"

# ---------------------------------------------------------------------------------------
# Corpus (pristine copy cached across invocations; each run works on a fresh copy)
# ---------------------------------------------------------------------------------------

STAMP_FILE="$CORPUS_BASE.stamp"
GEN_SUMMARY="$CORPUS_BASE.summary.json"
stamp="size_mib=$SIZE_MIB seed=$SEED generator=$(sha256sum "$CORPUS_PY" | cut -c1-16)"
if [[ -d $CORPUS_BASE && -f $STAMP_FILE && $(cat "$STAMP_FILE") == "$stamp" && -f $GEN_SUMMARY ]]; then
    log "reusing corpus $CORPUS_BASE ($stamp)"
else
    log "generating a ${SIZE_MIB} MiB corpus in $CORPUS_BASE"
    rm -rf "$CORPUS_BASE" "$STAMP_FILE" "$GEN_SUMMARY"
    python3 "$CORPUS_PY" "$CORPUS_BASE" --size-mib "$SIZE_MIB" --seed "$SEED" \
        --summary "$GEN_SUMMARY" --quiet || die "corpus generation failed"
    printf '%s\n' "$stamp" >"$STAMP_FILE"
fi

corpus_bytes() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d\n", s}'; }
warm_cache() { find "$1" -type f -print0 | xargs -0 -r cat >/dev/null; }

# ---------------------------------------------------------------------------------------
# Per-tool commands. Each sets CMD (an argv array) for the given action.
# Every tool gets its own cache/config folders inside the run folder.
# ---------------------------------------------------------------------------------------

tool_env() {  # tool_env TOOL CWD -> ENVV array (env -C CWD, isolated variables)
    local tool=$1 cwd=$2 home="$RUN_DIR/home/$1"
    mkdir -p "$home/cache" "$home/config"
    local unset=() vars=("XDG_CACHE_HOME=$home/cache" "XDG_CONFIG_HOME=$home/config")
    case $tool in
        cairn) vars+=("CAIRN_PASSWORD=$PASSWORD") ;;
        restic)
            unset=(-u RESTIC_REPOSITORY -u RESTIC_PASSWORD_FILE -u RESTIC_PASSWORD_COMMAND -u RESTIC_CACHE_DIR)
            vars+=("RESTIC_PASSWORD=$PASSWORD") ;;
        rustic)
            unset=(-u RUSTIC_REPOSITORY -u RUSTIC_PASSWORD_FILE -u RUSTIC_PASSWORD_COMMAND -u RUSTIC_CACHE_DIR)
            vars+=("RUSTIC_PASSWORD=$PASSWORD") ;;
        borg)
            unset=(-u BORG_REPO -u BORG_PASSCOMMAND)
            vars+=("BORG_PASSPHRASE=$PASSWORD" "BORG_BASE_DIR=$home" "BORG_RELOCATED_REPO_ACCESS_IS_OK=yes") ;;
    esac
    ENVV=(env -C "$cwd" "${unset[@]}" "${vars[@]}")
}

tool_cmd() {  # tool_cmd TOOL ACTION [PHASE|TARGET]
    local tool=$1 action=$2 arg=${3:-}
    local repo="$RUN_DIR/repo-$tool" cfg="$RUN_DIR/home/$tool/cairn.config"
    local cwd=$RUN_DIR
    [[ $action == restore ]] && cwd=$arg
    tool_env "$tool" "$cwd"
    case $tool:$action in
        cairn:init) CMD=("$CAIRN_BIN" --config-file "$cfg" repository create filesystem --path "$repo") ;;
        cairn:backup) CMD=("$CAIRN_BIN" --config-file "$cfg" snapshot create "$CORPUS" --json) ;;
        cairn:restore) CMD=("$CAIRN_BIN" --config-file "$cfg" restore latest "$arg") ;;
        restic:init) CMD=(restic init --repo "$repo") ;;
        restic:backup) CMD=(restic backup --repo "$repo" "$CORPUS") ;;
        restic:restore) CMD=(restic restore latest --repo "$repo" --target "$arg") ;;
        rustic:init) CMD=(rustic -r "$repo" init) ;;
        rustic:backup) CMD=(rustic -r "$repo" backup "$CORPUS") ;;
        rustic:restore) CMD=(rustic -r "$repo" restore latest "$arg") ;;
        borg:init) CMD=(borg init -e repokey "$repo") ;;
        borg:backup) CMD=(borg create "$repo::$arg" "$CORPUS") ;;
        borg:restore) CMD=(borg extract "$repo::mutated") ;;  # extracts into the cwd
        *) die "internal: no command for $tool $action" ;;
    esac
    CMD=("${ENVV[@]}" "${CMD[@]}")
}

restored_root() {  # restored_root TOOL TARGET -> where the corpus contents ended up
    local tool=$1 target=$2
    case $tool in
        cairn) echo "$target" ;;                       # the snapshot root's contents
        restic|rustic|borg) echo "$target$CORPUS" ;;   # the full absolute path below the target
    esac
}

# Writes PREFAULT_MIB of memory and releases it. On a virtual machine that hands freed memory back to its
# host (virtio-balloon free page reporting), the next process to touch that memory pays the host's page
# faults inside its own system time (measured here: 0.6-1.5 s per GiB); a restore, which fills a GiB of page
# cache, paid anything between 0 and 1.3 s depending on what the previous phase had freed. Touching the
# memory first gives every tool and phase the same start (benches/prefault.py: at most the free memory less
# 512 MiB, so the warm corpus stays in the page cache).
prefault() {
    (( PREFAULT_MIB > 0 )) || return 0
    python3 "$SCRIPT_DIR/prefault.py" "$PREFAULT_MIB" \
        || log "  (could not prefault $PREFAULT_MIB MiB of memory; continuing)"
}

# run_timed LOGPREFIX cmd... : sets WALL_S, RSS_KIB, CPU_S (user + system), RC. stdout/stderr go to LOGPREFIX.{out,err}.
run_timed() {
    local prefix=$1; shift
    local t0 t1
    sync
    prefault
    t0=$(date +%s%N)
    set +e
    /usr/bin/time -f '%M %U %S' -o "$prefix.rss" "$@" >"$prefix.out" 2>"$prefix.err"
    RC=$?
    set -e
    t1=$(date +%s%N)
    WALL_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
    local usage
    usage=$(tail -n1 "$prefix.rss" 2>/dev/null || true)
    RSS_KIB=${usage%% *}
    [[ $RSS_KIB =~ ^[0-9]+$ ]] || RSS_KIB=0
    CPU_S=$(awk '{ if (NF == 3) printf "%.2f", $2 + $3; else print "-" }' <<<"$usage")
}

RAW="$WORK/raw.tsv"
printf 'run\tphase\ttool\tstatus\texit_code\twall_s\tcorpus_bytes\tpeak_rss_kib\tcpu_s\trepo_bytes\trestore_identical\n' >"$RAW"
record() {  # record RUN PHASE TOOL STATUS RC WALL BYTES RSS CPU REPO IDENTICAL
    local IFS=$'\t'
    printf '%s\n' "$*" >>"$RAW"
}

FAILED=0
declare -A BROKEN

backup_phase() {  # backup_phase RUN PHASE
    local run=$1 phase=$2 tool bytes repo_bytes status
    bytes=$(corpus_bytes "$CORPUS")
    warm_cache "$CORPUS"
    for tool in "${TOOLS[@]}"; do
        if [[ -n ${BROKEN[$tool]:-} ]]; then
            record "$run" "$phase" "$tool" skipped - - "$bytes" - - - -
            continue
        fi
        tool_cmd "$tool" backup "$phase"
        run_timed "$LOG_DIR/$tool-$phase" "${CMD[@]}"
        repo_bytes=$(du -sb "$RUN_DIR/repo-$tool" | cut -f1)
        status=ok
        if [[ $RC -eq 3 && $tool == cairn ]]; then
            status=warning
            log "  $tool: exit 3 (some files could not be read), see $LOG_DIR/$tool-$phase.err"
            FAILED=1
        elif [[ $RC -ne 0 ]]; then
            status=failed
            BROKEN[$tool]=1
            FAILED=1
            log "  $tool $phase backup FAILED (exit $RC); last lines of stderr:"
            tail -n 15 "$LOG_DIR/$tool-$phase.err" >&2 || true
        fi
        record "$run" "$phase" "$tool" "$status" "$RC" "$WALL_S" "$bytes" "$RSS_KIB" "$CPU_S" "$repo_bytes" -
        log "  $phase $tool: ${WALL_S}s, CPU ${CPU_S}s, peak RSS $(( RSS_KIB / 1024 )) MiB, repo $(( repo_bytes / 1048576 )) MiB [$status]"
    done
}

restore_phase() {  # restore_phase RUN
    local run=$1 tool bytes target root repo_bytes status identical
    bytes=$(corpus_bytes "$CORPUS")
    python3 "$CORPUS_PY" "$CORPUS" --manifest "$RUN_DIR/expected.manifest"
    for tool in "${TOOLS[@]}"; do
        if [[ -n ${BROKEN[$tool]:-} ]]; then
            record "$run" restore "$tool" skipped - - "$bytes" - - - -
            continue
        fi
        target="$RUN_DIR/restore-$tool"
        rm -rf "$target"
        mkdir -p "$target"
        tool_cmd "$tool" restore "$target"
        run_timed "$LOG_DIR/$tool-restore" "${CMD[@]}"
        repo_bytes=$(du -sb "$RUN_DIR/repo-$tool" | cut -f1)
        status=ok
        identical=-
        if [[ $RC -ne 0 ]]; then
            status=failed
            FAILED=1
            log "  $tool restore FAILED (exit $RC); last lines of stderr:"
            tail -n 15 "$LOG_DIR/$tool-restore.err" >&2 || true
        else
            root=$(restored_root "$tool" "$target")
            if [[ -d $root ]]; then
                python3 "$CORPUS_PY" "$root" --manifest "$LOG_DIR/$tool-restore.manifest"
                if cmp -s "$RUN_DIR/expected.manifest" "$LOG_DIR/$tool-restore.manifest"; then
                    identical=yes
                    rm -f "$LOG_DIR/$tool-restore.manifest"
                else
                    identical=no
                fi
            else
                identical=no
                log "  $tool: restored tree not found at $root"
            fi
            if [[ $identical == no ]]; then
                status=mismatch
                FAILED=1
                log "  $tool restore is NOT identical to the corpus (first differences; < expected, > restored):"
                if [[ -f $LOG_DIR/$tool-restore.manifest ]]; then
                    diff "$RUN_DIR/expected.manifest" "$LOG_DIR/$tool-restore.manifest" \
                        >"$LOG_DIR/$tool-restore.diff" || true
                    head -n 20 "$LOG_DIR/$tool-restore.diff" >&2
                fi
            fi
        fi
        record "$run" restore "$tool" "$status" "$RC" "$WALL_S" "$bytes" "$RSS_KIB" "$CPU_S" "$repo_bytes" "$identical"
        log "  restore $tool: ${WALL_S}s, CPU ${CPU_S}s, peak RSS $(( RSS_KIB / 1024 )) MiB, identical: $identical [$status]"
        [[ $KEEP -eq 1 ]] || rm -rf "$target"
    done
}

# ---------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------

CORPUS="$WORK/corpus"
rm -rf "$OUT_DIR/logs"
for run in $(seq 1 "$RUNS"); do
    log "run $run/$RUNS"
    RUN_DIR="$WORK/run-$run"
    LOG_DIR="$OUT_DIR/logs/run-$run"
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    BROKEN=()
    rm -rf "$CORPUS"
    cp -a "$CORPUS_BASE" "$CORPUS"

    for tool in "${TOOLS[@]}"; do
        tool_cmd "$tool" init
        if ! "${CMD[@]}" >"$LOG_DIR/$tool-init.out" 2>"$LOG_DIR/$tool-init.err"; then
            log "  $tool: repository creation FAILED; last lines of stderr:"
            tail -n 15 "$LOG_DIR/$tool-init.err" >&2 || true
            BROKEN[$tool]=1
            FAILED=1
        fi
    done

    backup_phase "$run" initial
    backup_phase "$run" unchanged
    log "  mutating ~${MUTATE_PERCENT}% of the corpus"
    python3 "$CORPUS_PY" "$CORPUS" --mutate-percent "$MUTATE_PERCENT" --seed "$SEED" \
        --summary "$RUN_DIR/mutation.json" --quiet
    backup_phase "$run" mutated
    restore_phase "$run"

    [[ $KEEP -eq 1 ]] || rm -rf "$RUN_DIR"/repo-* "$CORPUS"
done
[[ -f $WORK/run-1/mutation.json ]] && cp "$WORK/run-1/mutation.json" "$OUT_DIR/mutation.json"
cp "$GEN_SUMMARY" "$OUT_DIR/corpus.json"

# ---------------------------------------------------------------------------------------
# Report: medians over runs -> results.md / results.csv / results.json, raw -> results-raw.csv
# ---------------------------------------------------------------------------------------

export NPROC CPU_MODEL MEM_GIB KERNEL FS_TYPE SIZE_MIB RUNS MUTATE_PERCENT SEED PREFAULT_MIB
python3 - "$RAW" "$VERSIONS_FILE" "$OUT_DIR" "${PHASES[@]}" <<'PY'
import csv, json, os, statistics, sys, time

raw_path, versions_path, out_dir, *phases = sys.argv[1:]
with open(raw_path) as f:
    raw = list(csv.DictReader(f, delimiter="\t"))
versions = {}
with open(versions_path) as f:
    for line in f:
        t, v = line.rstrip("\n").split("\t", 1)
        versions[t] = v
tools = list(versions)
env = os.environ
machine = {
    "nproc": int(env["NPROC"]), "cpu_model": env["CPU_MODEL"], "memory_gib": float(env["MEM_GIB"]),
    "kernel": env["KERNEL"], "tmp_filesystem": env["FS_TYPE"],
}
params = {
    "size_mib": int(env["SIZE_MIB"]), "runs": int(env["RUNS"]),
    "mutate_percent": float(env["MUTATE_PERCENT"]), "seed": int(env["SEED"]),
    "page_cache": "warm (corpus read once before each backup phase; caches never dropped)",
    "prefault_mib": int(env["PREFAULT_MIB"]),
}

def num(x, conv=float):
    try:
        return conv(x)
    except (TypeError, ValueError):
        return None

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

rows = []
for phase in phases:
    for tool in tools:
        rs = [r for r in raw if r["phase"] == phase and r["tool"] == tool]
        # A restore that differs is still timed; its status says so.
        good = [r for r in rs if r["status"] in ("ok", "warning", "mismatch")]
        statuses = sorted({r["status"] for r in rs})
        wall = med(num(r["wall_s"]) for r in good)
        nbytes = med(num(r["corpus_bytes"], int) for r in rs)
        row = {
            "phase": phase, "tool": tool,
            "runs_ok": len(good), "runs": len(rs),
            "status": "ok" if statuses == ["ok"] else "/".join(statuses) or "-",
            "wall_s": wall,
            "corpus_bytes": nbytes,
            "mb_per_s": (nbytes / 1e6 / wall) if wall and nbytes else None,
            "peak_rss_mib": (lambda v: v / 1024 if v is not None else None)(
                med(num(r["peak_rss_kib"]) for r in good)),
            "cpu_s": med(num(r.get("cpu_s")) for r in good),
            "repo_bytes": med(num(r["repo_bytes"], int) for r in good),
        }
        if phase == "restore":
            ids = {r["restore_identical"] for r in rs}
            row["restore_identical"] = "yes" if ids == {"yes"} else "no" if "no" in ids else "-"
        rows.append(row)
for row in rows:
    base = next((r for r in rows if r["phase"] == row["phase"] and r["tool"] == "restic"), None)
    row["speedup_vs_restic"] = (base["wall_s"] / row["wall_s"]
                                if base and base["wall_s"] and row["wall_s"] else None)

def fmt(v, spec):
    return "-" if v is None else format(v, spec)

head = (f"Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB RAM, "
        f"{machine['kernel']}, temp on {machine['tmp_filesystem']}  \n"
        f"Corpus: {params['size_mib']} MiB generated by benches/corpus.py (seed {params['seed']}), "
        f"{params['mutate_percent']:g} % mutated before the third backup; warm page cache; "
        f"{params['prefault_mib']} MiB of memory prefaulted before each command; "
        f"median of {params['runs']} run(s)  \n"
        "Tools: " + "; ".join(f"{t}: {v}" for t, v in versions.items()) + "\n")
lines = [head,
         "| phase | tool | wall s | MB/s | speed-up vs restic | CPU s | peak RSS MiB | repo MiB | status |",
         "|---|---|---:|---:|---:|---:|---:|---:|---|"]
for r in rows:
    status = r["status"]
    if r["phase"] == "restore" and r["restore_identical"] != "-":
        status += ", identical" if r["restore_identical"] == "yes" else ", NOT IDENTICAL"
    lines.append(
        f"| {r['phase']} | {r['tool']} | {fmt(r['wall_s'], '.2f')} | {fmt(r['mb_per_s'], '.1f')} | "
        f"{fmt(r['speedup_vs_restic'], '.2f')} | {fmt(r['cpu_s'], '.2f')} | {fmt(r['peak_rss_mib'], '.0f')} | "
        f"{fmt(None if r['repo_bytes'] is None else r['repo_bytes'] / 1048576, '.1f')} | {status} |")
md = "\n".join(lines) + "\n"
print(md)
with open(os.path.join(out_dir, "results.md"), "w") as f:
    f.write(md)

cols = ["phase", "tool", "wall_s", "mb_per_s", "speedup_vs_restic", "cpu_s", "peak_rss_mib", "repo_bytes",
        "corpus_bytes", "restore_identical", "status", "runs_ok", "runs"]
with open(os.path.join(out_dir, "results.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else round(r[k], 4) if isinstance(r.get(k), float)
                        else r.get(k, "")) for k in cols})
with open(os.path.join(out_dir, "results-raw.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(raw[0].keys()) if raw else ["run"])
    w.writeheader()
    w.writerows(raw)

for r in raw:
    # cairn's `snapshot create --json` output, when it parses, goes into the JSON document.
    if r["tool"] == "cairn" and r["phase"] != "restore":
        p = os.path.join(out_dir, "logs", f"run-{r['run']}", f"cairn-{r['phase']}.out")
        try:
            with open(p) as f:
                r["cairn_json"] = json.load(f)
        except (OSError, ValueError):
            pass

def load(name):
    try:
        with open(os.path.join(out_dir, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

doc = {
    "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "machine": machine, "parameters": params, "tools": versions,
    "corpus": load("corpus.json"), "mutation": load("mutation.json"),
    "results": rows, "raw": raw,
}
with open(os.path.join(out_dir, "results.json"), "w") as f:
    json.dump(doc, f, indent=1)
PY

log "results written to $OUT_DIR/results.{md,csv,json} (per-run: results-raw.csv, logs/)"
if [[ $FAILED -ne 0 ]]; then
    log "some tool failed or restored a different tree: see the status column and $OUT_DIR/logs/"
    exit 1
fi
