#!/usr/bin/env python3
"""Deterministic benchmark corpus for Cairn's end-to-end comparison (benches/compare.sh).

Generate (DIR must not exist or be empty):
    python3 benches/corpus.py DIR --size-mib 1024

Mutate an existing, freshly generated corpus in place (~P % of its bytes change):
    python3 benches/corpus.py DIR --mutate-percent 2

Write a manifest (one line per entry: type, permission bits, size, sha256 or
symlink target, relative path; sorted) used to check that a restore is identical:
    python3 benches/corpus.py DIR --manifest FILE

Composition of a generated corpus, by bytes (approximately):
  * ~40 % text-like files: pseudo-English prose, source-code-like text, logs and
    CSV, assembled from a pool of pre-built blocks so that zstd compresses the
    text roughly 3-5x (the pool is far larger than a compression window);
  * ~40 % random (incompressible) binaries;
  * ~20 % copies of earlier files: exact copies, and copies with a few bytes
    inserted at the start and/or in the middle (shifted content, which only
    content-defined chunking can deduplicate);
  * of the above, 20k+ small files (100 B - 16 KiB, log-uniform) at 1 GiB,
    proportionally fewer for smaller sizes, in nested folders 3-5 levels deep;
  * plus a few symlinks (one dangling, one to a folder), empty files, empty
    folders and executable files.

Everything derives from one seeded random.Random (never os.urandom), so the same
--size-mib and --seed always give byte-identical files, permissions and mtimes
(Python >= 3.9). Only the standard library is used.
"""

import argparse
import hashlib
import json
import math
import os
import random
import stat
import sys
import time

MIB = 1 << 20
KIB = 1 << 10
DEFAULT_SEED = 20240601
# Fixed timestamps so repeated generations are identical, metadata included.
BASE_MTIME = 1_700_000_000

# Common English words (a frequency-ordered list; earlier words are drawn more often).
ENGLISH = """
the of and to a in is it you that he was for on are with as his they be at one
have this from or had by hot word but what some we can out other were all there
when up use your how said an each she which do their time if will way about many
then them write would like so these her long make thing see him two has look more
day could go come did number sound no most people my over know water than call
first who may down side been now find any new work part take get place made live
where after back little only round man year came show every good me give our
under name very through just form sentence great think say help low line differ
turn cause much mean before move right boy old too same tell does set three want
air well also play small end put home read hand port large spell add even land
here must big high such follow act why ask men change went light kind off need
house picture try us again animal point mother world near build self earth father
head stand own page should country found answer school grow study still learn
plant cover food sun four between state keep eye never last let thought city tree
cross farm hard start might story saw far sea draw left late run while press close
night real life few north open seem together next white children begin got walk
example ease paper group always music those both mark often letter until mile
river car feet care second book carry took science eat room friend began idea
fish mountain stop once base hear horse cut sure watch color face wood main
enough plain girl usual young ready above ever red list though feel talk bird soon
body dog family direct pose leave song measure door product black short numeral
class wind question happen complete ship area half rock order fire south problem
piece told knew pass since top whole king space heard best hour better true
during hundred five remember step early hold west ground interest reach fast verb
sing listen six table travel less morning ten simple several vowel toward war lay
against pattern slow center love person money serve appear road map rain rule
govern pull cold notice voice unit power town fine certain fly fall lead cry dark
machine note wait plan figure star box noun field rest correct able pound done
beauty drive stood contain front teach week final gave green quick develop ocean
warm free minute strong special mind behind clear tail produce fact street inch
multiply nothing course stay wheel full force blue object decide surface deep moon
island foot system busy test record boat common gold possible plane dry wonder
laugh thousand ago ran check game shape equate miss brought heat snow tire bring
yes distant fill east paint language among
""".split()

CODE_KEYWORDS = """
fn let mut pub struct impl return if else for while match self use mod const
static enum trait where async await loop break continue in as ref move unsafe
def class import from None True False pass raise try except with lambda yield
int char void unsigned long double float sizeof typedef switch case default
u8 u16 u32 u64 usize i32 i64 f64 bool str String Vec Option Result Box Arc
Ok Err Some new len push get insert remove iter map filter collect unwrap expect
clone into as_ref to_string from_str parse read write flush open close buf
""".split()

PHRASE_SHARE = 0.4
LOG_LEVELS = ["INFO", "INFO", "INFO", "DEBUG", "DEBUG", "WARN", "ERROR", "TRACE"]

TEXT_EXT = {
    "prose": [".txt", ".md", ".rst", ".html"],
    "code": [".rs", ".py", ".c", ".go", ".js", ".h"],
    "log": [".log", ".csv", ".jsonl"],
}
BIN_EXT = [".bin", ".dat", ".jpg", ".png", ".zip", ".so", ".pdf", ".gz", ".db"]
TEXT_EXTS = {e for v in TEXT_EXT.values() for e in v}


# --------------------------------------------------------------------------------------
# Text pool: blocks are generated word by word once, then files are assembled from them.
# --------------------------------------------------------------------------------------


class TextPool:
    """Pools of pre-built text blocks, one pool per style."""

    def __init__(self, rng, pool_bytes):
        self.rng = rng
        consonants = "b c d f g h j k l m n p r s t v w z ch sh th st tr pl gr br".split()
        vowels = "a e i o u ai ea ou io y".split()
        pseudo = set()
        while len(pseudo) < 2000:
            n = rng.choice((1, 2, 2, 2, 3, 3, 4))
            w = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(n))
            if rng.random() < 0.4:
                w += rng.choice("nrstdlmk")
            pseudo.add(w)
        pseudo = sorted(pseudo)
        rng.shuffle(pseudo)
        # English words first (most frequent), pseudo-words form the long tail.
        self.vocab = ENGLISH + pseudo
        self.cum = list(_accumulate(1.0 / (i + 2.7) ** 1.1 for i in range(len(self.vocab))))
        self.idents = self._identifiers(2500)
        # Recurring phrases give prose the longer repeats that real text has.
        self.phrases = [" ".join(self.words(rng.randint(2, 5))) for _ in range(4000)]
        self.phrase_cum = list(_accumulate(1.0 / (i + 1.5) for i in range(len(self.phrases))))
        self.blocks = {}
        shares = {"prose": 0.45, "code": 0.35, "log": 0.20}
        for style, share in shares.items():
            self.blocks[style] = self._build(style, int(pool_bytes * share))
        self.all_blocks = self.blocks["prose"] + self.blocks["code"] + self.blocks["log"]

    def words(self, k):
        return self.rng.choices(self.vocab, cum_weights=self.cum, k=k)

    def phrase(self):
        return self.rng.choices(self.phrases, cum_weights=self.phrase_cum)[0]

    def _identifiers(self, n):
        rng = self.rng
        out = []
        ws = self.words(n * 3)
        for i in range(n):
            parts = ws[i * 3 : i * 3 + rng.choice((1, 2, 2, 3))]
            if rng.random() < 0.5:
                out.append("_".join(parts))
            else:
                out.append(parts[0] + "".join(p.capitalize() for p in parts[1:]))
        return out

    def _build(self, style, nbytes):
        blocks = []
        total = 0
        make = {"prose": self._prose, "code": self._code, "log": self._log}[style]
        while total < nbytes:
            b = make()
            blocks.append(b)
            total += len(b)
        return blocks

    def _prose(self):
        rng = self.rng
        n = rng.randint(100, 350)
        ws = self.words(n)
        ph = rng.choices(self.phrases, cum_weights=self.phrase_cum, k=n)
        ws = [p if rng.random() < PHRASE_SHARE else w for w, p in zip(ws, ph)]
        out = []
        line = []
        linelen = 0
        width = 72 + rng.randint(0, 8)
        i = 0
        n = len(ws)
        while i < n:
            slen = rng.randint(5, 22)
            sent = ws[i : i + slen]
            i += slen
            sent[0] = sent[0].capitalize()
            if len(sent) > 6 and rng.random() < 0.5:
                c = rng.randint(2, len(sent) - 3)
                sent[c] = sent[c] + ","
            if rng.random() < 0.08:
                sent.insert(rng.randint(1, len(sent)), str(rng.randint(2, 2050)))
            sent[-1] = sent[-1] + rng.choice("....?!")
            for w in sent:
                if linelen + len(w) + 1 > width:
                    out.append(" ".join(line))
                    line = []
                    linelen = 0
                line.append(w)
                linelen += len(w) + 1
        out.append(" ".join(line))
        return ("\n".join(out) + "\n\n").encode()

    def _code(self):
        rng = self.rng
        idents = self.idents
        kw = CODE_KEYWORDS
        lines = []
        name = rng.choice(idents)
        args = ", ".join(f"{rng.choice(idents)}: {rng.choice(kw)}" for _ in range(rng.randint(0, 4)))
        lines.append(f"// {' '.join(self.words(rng.randint(4, 14)))}")
        lines.append(f"pub fn {name}({args}) -> {rng.choice(kw)} {{")
        depth = 1
        for _ in range(rng.randint(8, 40)):
            ind = "    " * depth
            r = rng.random()
            if r < 0.30:
                lines.append(
                    f"{ind}let {rng.choice(idents)} = {rng.choice(idents)}."
                    f"{rng.choice(kw)}({rng.choice(idents)}, {rng.randint(0, 4096)});"
                )
            elif r < 0.45:
                lines.append(f"{ind}// {self.phrase()} {' '.join(self.words(rng.randint(1, 6)))}")
            elif r < 0.58 and depth < 5:
                lines.append(
                    f"{ind}{rng.choice(('if', 'while', 'for x in', 'match'))} "
                    f"{rng.choice(idents)} {rng.choice(('==', '!=', '<', '>=', '&&'))} "
                    f"{rng.choice(idents)} {{"
                )
                depth += 1
            elif r < 0.70 and depth > 1:
                depth -= 1
                lines.append("    " * depth + "}")
            elif r < 0.85:
                lines.append(
                    f"{ind}{rng.choice(idents)}.{rng.choice(idents)}"
                    f"(&{rng.choice(idents)})?;"
                )
            else:
                lines.append(f'{ind}return Err(format!("{" ".join(self.words(rng.randint(2, 7)))}"));')
        while depth > 0:
            depth -= 1
            lines.append("    " * depth + "}")
        return ("\n".join(lines) + "\n\n").encode()

    def _log(self):
        rng = self.rng
        t = BASE_MTIME + rng.randint(0, 30_000_000)
        lines = []
        host = rng.choice(self.idents)
        for _ in range(rng.randint(10, 40)):
            t += rng.randint(0, 90)
            tm = time.gmtime(t)
            ms = rng.randint(0, 999)
            if rng.random() < 0.75:
                lines.append(
                    f"{tm.tm_year:04}-{tm.tm_mon:02}-{tm.tm_mday:02}T{tm.tm_hour:02}:"
                    f"{tm.tm_min:02}:{tm.tm_sec:02}.{ms:03}Z {rng.choice(LOG_LEVELS)} "
                    f"{host}::{rng.choice(self.idents[:300])}: {self.phrase()} {self.phrase()} "
                    f"id={rng.getrandbits(20):05x} took={rng.randint(0, 999)}ms"
                )
            else:
                lines.append(
                    f"{rng.randint(1, 999999)},{rng.choice(self.idents)},"
                    f"{rng.random() * 1000:.3f},{rng.choice(ENGLISH)},{rng.randint(0, 1 << 20)}"
                )
        return ("\n".join(lines) + "\n").encode()

    def text(self, size, style=None):
        """`size` bytes of text assembled from random pool blocks of one style (or any)."""
        blocks = self.blocks[style] if style else self.all_blocks
        parts = []
        got = 0
        rng = self.rng
        while got < size:
            k = max(1, (size - got) // 1500 + 1)
            chosen = rng.choices(blocks, k=min(k, 4096))
            parts.extend(chosen)
            got += sum(map(len, chosen))
        return b"".join(parts)[:size]


def _accumulate(it):
    s = 0.0
    for x in it:
        s += x
        yield s


# --------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------


class Generator:
    def __init__(self, root, size_mib, seed):
        self.root = os.path.abspath(root)
        self.total_target = int(size_mib * MIB)
        self.size_mib = size_mib
        self.rng = random.Random(seed)
        self.seed = seed
        # The pool must be much larger than a zstd window and a backup chunk, so that
        # text compresses like text and not like repeated blocks; capped for speed.
        pool = min(24 * MIB, max(4 * MIB, self.total_target // 40))
        self.pool = TextPool(random.Random(seed + 1), pool)
        self.files = []  # (relpath, size, kind) of regular files, in generation order
        self.dirs = set()
        self.mtime_seq = 0
        self.stats = {
            "text_bytes": 0, "text_files": 0,
            "binary_bytes": 0, "binary_files": 0,
            "dup_exact_bytes": 0, "dup_exact_files": 0,
            "dup_shifted_bytes": 0, "dup_shifted_files": 0,
            "small_files": 0, "small_bytes": 0,
            "symlinks": 0, "empty_files": 0, "empty_dirs": 0, "executables": 0,
        }
        self._dir_names()

    # -- tree layout --------------------------------------------------------------------

    def _dir_names(self):
        rng = random.Random(self.seed + 2)
        top = ["home", "projects", "archive", "media", "srv", "var", "docs", "build"]
        # Per-level name sets; a file's folder is depth 3-5 below the corpus root.
        widths = [len(top), 5, 5, 4, 4]
        scale = max(1.0, (self.total_target / (1024 * MIB)) ** 0.5)
        widths = [widths[0]] + [max(2, int(w * scale)) for w in widths[1:]]
        words = self.pool.vocab[:400] + self.pool.idents[:400]
        self.levels = [top]
        for w in widths[1:]:
            names = set()
            while len(names) < w:
                names.add(rng.choice(words).lower() + rng.choice(("", "", "-" + str(rng.randint(0, 99)))))
            self.levels.append(sorted(names))

    def rand_dir(self, min_depth=3, max_depth=5):
        rng = self.rng
        depth = rng.randint(min_depth, max_depth)
        parts = [rng.choice(self.levels[i]) for i in range(depth)]
        return os.path.join(*parts)

    # -- writing ------------------------------------------------------------------------

    def _next_mtime(self):
        self.mtime_seq += 1
        return BASE_MTIME + self.mtime_seq * 7

    def write(self, rel, data_iter, kind, mode=0o644):
        path = os.path.join(self.root, rel)
        d = os.path.dirname(rel)
        if d not in self.dirs:
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
            self.dirs.add(d)
        size = 0
        with open(path, "wb") as f:
            for chunk in data_iter:
                f.write(chunk)
                size += len(chunk)
        os.chmod(path, mode)
        m = self._next_mtime()
        os.utime(path, (m, m))
        self.files.append((rel, size, kind))
        return size

    def unique_name(self, d, stem, ext):
        rel = os.path.join(d, stem + ext)
        n = 1
        while os.path.lexists(os.path.join(self.root, rel)):
            n += 1
            rel = os.path.join(d, f"{stem}-{n}{ext}")
        return rel

    def random_binary(self, size):
        rng = self.rng
        left = size
        while left > 0:
            n = min(left, 4 * MIB)
            yield rng.randbytes(n)
            left -= n

    def text_name(self):
        style = self.rng.choices(("prose", "code", "log"), weights=(45, 35, 20))[0]
        ext = self.rng.choice(TEXT_EXT[style])
        return style, ext

    def stem(self):
        rng = self.rng
        return rng.choice(self.pool.idents).lower().replace("_", "-")[:40] or "file"

    # -- phases -------------------------------------------------------------------------

    def run(self):
        t0 = time.time()
        rng = self.rng
        total = self.total_target
        text_target = int(total * 0.40)
        bin_target = int(total * 0.40)

        # 1. Small files: 20k+ at 1 GiB (scaled down for smaller corpora), 100 B - 16 KiB.
        n_small = max(200, int(22000 * self.size_mib / 1024))
        lo, hi = math.log(100), math.log(16 * KIB)
        for i in range(n_small):
            size = int(math.exp(rng.uniform(lo, hi)))
            d = self.rand_dir()
            if rng.random() < 0.65:
                style, ext = self.text_name()
                mode = 0o755 if ext == ".py" and rng.random() < 0.2 else 0o644
                rel = self.unique_name(d, self.stem(), ext)
                n = self.write(rel, [self.pool.text(size, style)], "text", mode)
                self.stats["text_bytes"] += n
                self.stats["text_files"] += 1
                if mode == 0o755:
                    self.stats["executables"] += 1
            else:
                rel = self.unique_name(d, self.stem(), rng.choice(BIN_EXT))
                n = self.write(rel, self.random_binary(size), "binary")
                self.stats["binary_bytes"] += n
                self.stats["binary_files"] += 1
            self.stats["small_files"] += 1
            self.stats["small_bytes"] += n

        # 2. Larger text and binary files, interleaved, until each reaches its share.
        #    Sizes are log-uniform; the largest binary is capped so small corpora stay mixed.
        big_bin_cap = max(256 * KIB, min(96 * MIB, bin_target // 6))
        big_txt_cap = max(128 * KIB, min(12 * MIB, text_target // 20))
        while self.stats["text_bytes"] < text_target or self.stats["binary_bytes"] < bin_target:
            if self.stats["text_bytes"] < text_target and (
                self.stats["binary_bytes"] >= bin_target or rng.random() < 0.6
            ):
                size = int(math.exp(rng.uniform(math.log(20 * KIB), math.log(big_txt_cap))))
                size = min(size, text_target - self.stats["text_bytes"] + 1024)
                style, ext = self.text_name()
                rel = self.unique_name(self.rand_dir(2, 5), self.stem(), ext)
                n = self.write(rel, [self.pool.text(size, style)], "text")
                self.stats["text_bytes"] += n
                self.stats["text_files"] += 1
            else:
                size = int(math.exp(rng.uniform(math.log(32 * KIB), math.log(big_bin_cap))))
                size = min(size, bin_target - self.stats["binary_bytes"] + 1024)
                rel = self.unique_name(self.rand_dir(2, 5), self.stem(), rng.choice(BIN_EXT))
                n = self.write(rel, self.random_binary(size), "binary")
                self.stats["binary_bytes"] += n
                self.stats["binary_files"] += 1

        # 3. Duplicates of earlier (non-small) files: exact and shifted copies.
        sources = [f for f in self.files if f[1] >= 64 * KIB]
        generated = self.stats["text_bytes"] + self.stats["binary_bytes"]
        dup_target = max(0, total - generated)
        dup_bytes = 0
        tries = 0
        min_src = min((f[1] for f in sources), default=0)
        while dup_bytes + min_src <= dup_target and sources and tries < 100000:
            tries += 1
            src_rel, src_size, kind = rng.choice(sources)
            if src_size > (dup_target - dup_bytes) * 1.1:
                continue
            with open(os.path.join(self.root, src_rel), "rb") as f:
                data = f.read()
            stem, ext = os.path.splitext(os.path.basename(src_rel))
            r = rng.random()
            if r < 0.5:
                how = "exact"
                new = data
            else:
                how = "shifted"
                ins = lambda: rng.randbytes(rng.randint(1, 64)) if kind == "binary" else \
                    self.pool.text(rng.randint(1, 64))  # noqa: E731
                where = rng.choice(("start", "middle", "both"))
                parts = []
                if where in ("start", "both"):
                    parts.append(ins())
                if where in ("middle", "both"):
                    mid = rng.randint(1, len(data) - 1)
                    parts += [data[:mid], ins(), data[mid:]]
                else:
                    parts.append(data)
                new = b"".join(parts)
            # Copies land in a "backup" area or next to the original, like real trees.
            if rng.random() < 0.5:
                d = os.path.join("archive", "copies", f"set-{rng.randint(1, 12):02}",
                                 os.path.dirname(src_rel))
            else:
                d = os.path.dirname(src_rel)
            rel = self.unique_name(d, f"{stem}.{'copy' if how == 'exact' else 'edited'}", ext)
            n = self.write(rel, [new], "dup-" + how)
            self.stats[f"dup_{how}_bytes"] += n
            self.stats[f"dup_{how}_files"] += 1
            dup_bytes += n

        # 4. Odds and ends: empty files, empty folders, symlinks.
        for i in range(5):
            rel = self.unique_name(self.rand_dir(), f"empty-{i}", ".txt")
            self.write(rel, [], "empty")
            self.stats["empty_files"] += 1
        empty_dirs = []
        for i in range(4):
            rel = os.path.join(self.rand_dir(2, 4), f"empty-dir-{i}")
            os.makedirs(os.path.join(self.root, rel), exist_ok=True)
            empty_dirs.append(rel)
            self.stats["empty_dirs"] += 1
        n_links = max(5, n_small // 1000)
        regular = [f for f in self.files if f[2] in ("text", "binary")]
        for i in range(n_links):
            target_rel = rng.choice(regular)[0]
            d = self.rand_dir()
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
            rel = self.unique_name(d, f"link-{i}", "")
            target = os.path.relpath(target_rel, d)
            self._symlink(target, rel)
        d = self.rand_dir()
        os.makedirs(os.path.join(self.root, d), exist_ok=True)
        self._symlink("../no/such/file.txt", self.unique_name(d, "dangling-link", ""))
        self._symlink(os.path.relpath(os.path.dirname(regular[0][0]), d),
                      self.unique_name(d, "dir-link", ""))

        # 5. Fixed permissions and mtimes on all folders (deepest first, after all writes).
        all_dirs = set()
        for dirpath, dirnames, _ in os.walk(self.root):
            for dn in dirnames:
                p = os.path.join(dirpath, dn)
                if not os.path.islink(p):
                    all_dirs.add(p)
        for p in sorted(all_dirs, key=lambda p: (-p.count(os.sep), p)):
            os.chmod(p, 0o755)
            os.utime(p, (BASE_MTIME, BASE_MTIME))
        os.chmod(self.root, 0o755)
        os.utime(self.root, (BASE_MTIME, BASE_MTIME))

        self.stats["total_bytes"] = sum(f[1] for f in self.files)
        self.stats["files"] = len(self.files)
        self.stats["dirs"] = len(all_dirs)
        self.stats["seconds"] = round(time.time() - t0, 2)
        return self.stats

    def _symlink(self, target, rel):
        p = os.path.join(self.root, rel)
        os.symlink(target, p)
        m = self._next_mtime()
        os.utime(p, (m, m), follow_symlinks=False)
        self.stats["symlinks"] += 1


# --------------------------------------------------------------------------------------
# Mutation
# --------------------------------------------------------------------------------------


def walk_files(root):
    """Sorted list of (relpath, size) of the regular files under root (symlinks excluded)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            p = os.path.join(dirpath, fn)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                out.append((os.path.relpath(p, root), st.st_size))
    out.sort()
    return out


def mutate(root, percent, seed):
    """Change ~percent % of the corpus bytes in place, deterministically.

    Overwrites regions of some files (size unchanged), inserts bytes into the middle
    of others (shifting their tail), appends to some, deletes a few small files and
    adds new files until the changed byte count reaches the target. Deterministic for
    a given corpus state: apply it to a freshly generated corpus.
    """
    t0 = time.time()
    root = os.path.abspath(root)
    rng = random.Random(f"cairn-bench-mutate-{seed}-{percent}")
    files = walk_files(root)
    total = sum(s for _, s in files)
    budget = int(total * percent / 100.0)
    pool = TextPool(random.Random(seed + 3), 4 * MIB)
    kinds = ("overwrite", "insert", "append", "delete", "new")
    shares = {"overwrite": 0.35, "insert": 0.15, "append": 0.20}
    st = {k + "_bytes": 0 for k in kinds}
    st.update({k + "_files": 0 for k in kinds})
    touched = set()
    order = files[:]
    rng.shuffle(order)

    def content(rel, n):
        ext = os.path.splitext(rel)[1]
        return pool.text(n) if ext in TEXT_EXTS else rng.randbytes(n)

    def candidates(min_size, max_size):
        for rel, size in order:
            if rel not in touched and min_size <= size <= max_size:
                yield rel, size

    # Overwrite regions in place (size unchanged).
    for rel, size in candidates(256 * KIB, 1 << 62):
        if st["overwrite_bytes"] >= budget * shares["overwrite"]:
            break
        touched.add(rel)
        with open(os.path.join(root, rel), "r+b") as f:
            for _ in range(rng.randint(1, 4)):
                n = min(size, rng.randint(4 * KIB, 64 * KIB))
                off = rng.randint(0, size - n)
                f.seek(off)
                f.write(content(rel, n))
                st["overwrite_bytes"] += n
        st["overwrite_files"] += 1

    # Insert bytes in the middle (shifts the rest of the file).
    for rel, size in candidates(64 * KIB, 32 * MIB):
        if st["insert_bytes"] >= budget * shares["insert"]:
            break
        touched.add(rel)
        p = os.path.join(root, rel)
        with open(p, "rb") as f:
            data = f.read()
        n = rng.randint(1 * KIB, 64 * KIB)
        off = rng.randint(1, size - 1)
        with open(p, "wb") as f:
            f.write(data[:off])
            f.write(content(rel, n))
            f.write(data[off:])
        st["insert_bytes"] += n
        st["insert_files"] += 1

    # Append (logs grow, archives get extended).
    for rel, size in candidates(1, 1 << 62):
        if st["append_bytes"] >= budget * shares["append"]:
            break
        touched.add(rel)
        n = rng.randint(4 * KIB, 256 * KIB)
        with open(os.path.join(root, rel), "ab") as f:
            f.write(content(rel, n))
        st["append_bytes"] += n
        st["append_files"] += 1

    # Delete a few small files (0.5 % of them, at least 5).
    small = list(candidates(1, 16 * KIB))
    for rel, size in small[: max(5, len(small) // 200)]:
        touched.add(rel)
        os.unlink(os.path.join(root, rel))
        st["delete_bytes"] += size
        st["delete_files"] += 1

    # New files in existing folders, until the changed bytes reach the target.
    dirs = sorted({os.path.dirname(r) for r, _ in files if os.path.dirname(r)})
    text_exts = sorted(TEXT_EXTS)
    i = 0
    while sum(st[k + "_bytes"] for k in kinds) < budget:
        i += 1
        d = rng.choice(dirs)
        ext = rng.choice(text_exts) if rng.random() < 0.5 else rng.choice(BIN_EXT)
        rel = os.path.join(d, f"new-{i:04}{ext}")
        n = int(math.exp(rng.uniform(math.log(1 * KIB), math.log(4 * MIB))))
        n = min(n, max(1 * KIB, budget - sum(st[k + "_bytes"] for k in kinds)))
        p = os.path.join(root, rel)
        with open(p, "wb") as f:
            f.write(content(rel, n))
        os.chmod(p, 0o644)
        st["new_bytes"] += n
        st["new_files"] += 1

    changed = sum(st[k + "_bytes"] for k in kinds)
    st["corpus_bytes_before"] = total
    st["corpus_bytes_after"] = sum(s for _, s in walk_files(root))
    st["changed_bytes"] = changed
    st["changed_percent"] = round(100.0 * changed / total, 3) if total else 0.0
    st["seconds"] = round(time.time() - t0, 2)
    return st


# --------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------


def manifest(root):
    """Sorted lines describing every entry below root (root itself excluded)."""
    root = os.path.abspath(root)
    lines = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            perm = f"{stat.S_IMODE(st.st_mode):04o}"
            if stat.S_ISLNK(st.st_mode):
                lines.append(f"l\t-\t-\t{os.readlink(p)}\t{rel}")
            elif stat.S_ISDIR(st.st_mode):
                lines.append(f"d\t{perm}\t-\t-\t{rel}")
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    while True:
                        b = f.read(4 * MIB)
                        if not b:
                            break
                        h.update(b)
                lines.append(f"f\t{perm}\t{st.st_size}\t{h.hexdigest()}\t{rel}")
            else:
                lines.append(f"o\t{perm}\t-\t-\t{rel}")
    lines.sort(key=lambda l: l.rsplit("\t", 1)[1])
    return lines


# --------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="corpus folder")
    ap.add_argument("--size-mib", type=float, default=1024, help="corpus size to generate (default 1024)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default %(default)s)")
    ap.add_argument("--mutate-percent", type=float, help="mutate the existing corpus in place instead")
    ap.add_argument("--manifest", metavar="FILE", help="write a manifest of DIR to FILE ('-' = stdout)")
    ap.add_argument("--summary", metavar="FILE", help="also write the JSON summary to FILE")
    ap.add_argument("--quiet", action="store_true", help="print nothing on success")
    a = ap.parse_args()

    if a.manifest:
        lines = manifest(a.dir)
        text = "".join(l + "\n" for l in lines)
        if a.manifest == "-":
            sys.stdout.write(text)
        else:
            with open(a.manifest, "w") as f:
                f.write(text)
        return 0

    if a.mutate_percent is not None:
        if not os.path.isdir(a.dir):
            sys.exit(f"corpus.py: {a.dir}: not a folder")
        summary = {"mode": "mutate", "percent": a.mutate_percent, "seed": a.seed}
        summary.update(mutate(a.dir, a.mutate_percent, a.seed))
    else:
        if a.size_mib <= 0:
            sys.exit("corpus.py: --size-mib must be positive")
        if os.path.exists(a.dir) and (not os.path.isdir(a.dir) or os.listdir(a.dir)):
            sys.exit(f"corpus.py: {a.dir} exists and is not an empty folder")
        os.makedirs(a.dir, exist_ok=True)
        summary = {"mode": "generate", "size_mib": a.size_mib, "seed": a.seed}
        summary.update(Generator(a.dir, a.size_mib, a.seed).run())

    text = json.dumps(summary, indent=1, sort_keys=True)
    if a.summary:
        with open(a.summary, "w") as f:
            f.write(text + "\n")
    if not a.quiet:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
