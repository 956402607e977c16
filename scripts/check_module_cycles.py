#!/usr/bin/env python3
"""Reports import cycles between the modules of the project's crates.

For every module (file module or inline `mod name { ... }`), the script collects the modules it
refers to: `use crate::...`, `use super::...`, `use self::...` (with `{...}` groups expanded) and
`crate::`/`super::` paths written inline in code. Then, for every module M, the modules below M are
collapsed onto M's children and the script looks for cycles among those children (strongly connected
components of more than one child). At the crate root that means: each module collapsed to its
top-level ancestor; inside a folder such as `accuracy/`: its files against each other.

A module using one of its ancestors is fine (children use the plumbing of their parent), and so is a
parent using its children; what is reported is two siblings (or two unrelated subtrees) that use
each other, directly or around a loop, with one reference (file:line) for every arrow of the loop.

Usage: scripts/check_module_cycles.py [CRATE_SRC_DIR ...]
    (default: src worker/src protocol/src, relative to the repository root)
       scripts/check_module_cycles.py --self-test
    (checks the checker on small made-up crates with and without cycles)
Exit status: 0 when no crate has a cycle, 1 when some do, 2 on bad arguments.
Standard library only.
"""

import os
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_comments_and_strings(text):
    """Blanks out comments, string and char literals (keeping newlines), so braces and paths inside
    them are not mistaken for code."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]) and not re.match(r"[A-Za-z0-9_]", text[i - 1 : i] or " "):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            j = n if end < 0 else end + 1 + len(hashes)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'":
            # A char literal ('x', '\n', '\u{..}'), not a lifetime ('a).
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand_use_tree(tree):
    """`a::{b, c::{d, e}}` -> [['a','b'], ['a','c','d'], ['a','c','e']] (aliases and globs dropped)."""
    tree = re.sub(r"\s+as\s+" + IDENT, "", tree)
    tree = re.sub(r"\s+", "", tree)
    results = []

    def split_top(s):
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            parts.append(cur)
        return parts

    def walk(prefix, s):
        brace = s.find("{")
        if brace < 0:
            segs = [p for p in s.split("::") if p and p != "*"]
            results.append(prefix + segs)
            return
        head = [p for p in s[:brace].split("::") if p]
        inner = s[brace + 1 : s.rfind("}")]
        for part in split_top(inner):
            walk(prefix + head, part)

    walk([], tree)
    return results


def file_modules(src):
    """Maps module path (tuple) -> file for every .rs file under a crate's src directory."""
    modules = {}
    for root, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel in (["lib"], ["main"]):
                mod = ()
            elif rel[-1] == "mod":
                mod = tuple(rel[:-1])
            else:
                mod = tuple(rel)
            if rel[0] in ("bin",):
                continue
            # A second binary root (src/main.rs beside src/lib.rs) is the same crate root.
            modules.setdefault(mod, []).append(path)
    return modules


def references(src):
    """Returns (modules, refs): every module path, and (from_module, target_path, file, line)."""
    modules = set()
    refs = []
    for file_mod, paths in file_modules(src).items():
        for path in paths:
            with open(path, encoding="utf-8") as f:
                code = strip_comments_and_strings(f.read())
            modules.add(file_mod)
            line_starts = [0]
            for m in re.finditer("\n", code):
                line_starts.append(m.end())

            def line_of(pos):
                lo, hi = 0, len(line_starts) - 1
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    if line_starts[mid] <= pos:
                        lo = mid
                    else:
                        hi = mid - 1
                return lo + 1

            # Inline modules: the module path at every position, by brace depth.
            scopes = []  # (start, end, module path)
            stack = [(file_mod, -1)]  # (module, depth at which it closes)
            depth = 0
            starts = {m.end() - 1: m.group(1) for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*\{", code)}
            seg_start = 0
            for i, ch in enumerate(code):
                if ch == "{":
                    if i in starts:
                        scopes.append((seg_start, i, stack[-1][0]))
                        seg_start = i
                        child = stack[-1][0] + (starts[i],)
                        modules.add(child)
                        stack.append((child, depth))
                    depth += 1
                elif ch == "}":
                    depth -= 1
                    if len(stack) > 1 and depth == stack[-1][1]:
                        scopes.append((seg_start, i + 1, stack[-1][0]))
                        seg_start = i + 1
                        stack.pop()
            scopes.append((seg_start, len(code), stack[-1][0]))

            def module_at(pos):
                for a, b, mod in scopes:
                    if a <= pos < b:
                        return mod
                return file_mod

            def resolve(mod, segs):
                segs = list(segs)
                if not segs:
                    return None
                if segs[0] == "crate":
                    base, segs = (), segs[1:]
                elif segs[0] in ("super", "self"):
                    base = mod
                    while segs and segs[0] in ("super", "self"):
                        if segs[0] == "super":
                            base = base[:-1]
                        segs = segs[1:]
                else:
                    return None
                return tuple(base) + tuple(segs)

            for m in re.finditer(r"\buse\s+([^;]*);", code):
                mod = module_at(m.start())
                for segs in expand_use_tree(m.group(1)):
                    target = resolve(mod, segs)
                    if target is not None:
                        refs.append((mod, target, path, line_of(m.start())))
            # Inline paths in code (`crate::errors::config_error(..)`, `super::build(..)`).
            use_spans = [(m.start(), m.end()) for m in re.finditer(r"\buse\s+[^;]*;", code)]
            for m in re.finditer(r"(?<![A-Za-z0-9_:])((?:crate|super|self)(?:::" + IDENT + ")+)", code):
                if any(a <= m.start() < b for a, b in use_spans):
                    continue
                mod = module_at(m.start())
                target = resolve(mod, m.group(1).split("::"))
                if target is not None:
                    refs.append((mod, target, path, line_of(m.start())))
    return modules, refs


def owning_module(modules, target):
    """The longest prefix of `target` that is a module (items inside a module belong to it)."""
    for k in range(len(target), -1, -1):
        if tuple(target[:k]) in modules:
            return tuple(target[:k])
    return ()


def strongly_connected(nodes, edges):
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def shortest_loop(comp, edges):
    """One loop through the first node of a strongly connected component (breadth-first)."""
    start = comp[0]
    members = set(comp)
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges.get(v, ())):
            if w not in members:
                continue
            if w == start:
                loop = [v]
                while prev[loop[-1]] is not None:
                    loop.append(prev[loop[-1]])
                return list(reversed(loop)) + [start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return comp + [start]


def check_crate(src):
    modules, refs = references(src)
    edges_by_resolved = []
    for frm, target, path, line in refs:
        to = owning_module(modules, target)
        if to != frm:
            edges_by_resolved.append((frm, to, path, line))
    cycles = []
    for parent in sorted(modules, key=lambda m: (len(m), m)):
        children = sorted(m for m in modules if len(m) == len(parent) + 1 and m[: len(parent)] == parent)
        if len(children) < 2:
            continue
        edges, witness = {}, {}
        for frm, to, path, line in edges_by_resolved:
            if frm[: len(parent)] != parent or to[: len(parent)] != parent:
                continue
            if len(frm) <= len(parent) or len(to) <= len(parent):
                continue  # the parent itself: uses between it and its descendants are fine
            a, b = frm[: len(parent) + 1], to[: len(parent) + 1]
            if a == b:
                continue
            edges.setdefault(a, set()).add(b)
            witness.setdefault((a, b), (path, line, frm, to))
        for comp in strongly_connected(children, edges):
            if len(comp) > 1:
                cycles.append((parent, comp, shortest_loop(comp, edges), witness))
    return cycles


def name_of(mod):
    return "::".join(mod) if mod else "crate"


SELF_TEST_CRATES = {
    # Two top-level modules that use each other, one of them through a folder module's child and
    # an inline path; a child using its parent (fine) and a cycle-looking path in a string and a
    # comment (ignored).
    "root_cycle": (
        {
            "main.rs": "mod a;\nmod b;\nmod c;\nfn main() { a::f(); }\n",
            "a/mod.rs": "mod inner;\npub fn f() {}\n",
            "a/inner.rs": "use super::f;\npub fn g() { crate::b::h(); }\n",
            "b.rs": "use crate::a::{self, f};\npub fn h() {}\n",
            "c.rs": "// use crate::a;\nconst S: &str = \"crate::a::f\";\nuse crate::b::h;\n",
        },
        [("crate", ["a", "b"])],
    ),
    # Siblings inside a folder: x -> y via `super::y`, y -> x via `use crate::m::{x::X}`, and
    # an inline `mod tests` whose `use super::*` refers to its own file (fine).
    "folder_cycle": (
        {
            "lib.rs": "pub mod m;\n",
            "m/mod.rs": "pub mod x;\npub mod y;\npub mod z;\n",
            "m/x.rs": "pub struct X;\npub fn f() { super::y::g(); }\nmod tests {\n    use super::*;\n}\n",
            "m/y.rs": "use crate::m::{x::X, z};\npub fn g() {}\n",
            "m/z.rs": "use super::super::m;\n",
        },
        [("m", ["m::x", "m::y"])],
    ),
    # One-way arrows only: no cycle.
    "no_cycle": (
        {
            "lib.rs": "mod a;\nmod b;\nmod c;\n",
            "a.rs": "use crate::b::B;\nuse crate::c;\n",
            "b.rs": "pub struct B;\nuse crate::c::C as Renamed;\n",
            "c.rs": "pub struct C;\n",
        },
        [],
    ),
}


def self_test():
    import tempfile

    failures = 0
    for name, (files, expected) in SELF_TEST_CRATES.items():
        with tempfile.TemporaryDirectory() as tmp:
            for rel, text in files.items():
                path = os.path.join(tmp, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
            got = sorted((name_of(p), [name_of(m) for m in comp]) for p, comp, _, _ in check_crate(tmp))
        if got != sorted(expected):
            failures += 1
            print(f"self-test {name}: expected cycles {sorted(expected)}, found {got}")
    print(f"self-test: {len(SELF_TEST_CRATES) - failures} of {len(SELF_TEST_CRATES)} cases pass")
    return 1 if failures else 0


def main(argv):
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    if argv == ["--self-test"]:
        return self_test()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dirs = argv or [os.path.join(repo, d) for d in ("src", "worker/src", "protocol/src")]
    found = False
    for src in dirs:
        if not os.path.isdir(src):
            print(f"error: {src} is not a directory (expected a crate's src folder)", file=sys.stderr)
            return 2
        cycles = check_crate(src)
        label = os.path.relpath(src, repo) if src.startswith(repo) else src
        if not cycles:
            print(f"{label}: no module cycles")
            continue
        found = True
        for parent, comp, loop, witness in cycles:
            print(f"{label}: cycle among the children of `{name_of(parent)}`: {', '.join(name_of(m) for m in comp)}")
            for a, b in zip(loop, loop[1:]):
                path, line, frm, to = witness[(a, b)]
                rel = os.path.relpath(path, repo) if path.startswith(repo) else path
                print(f"    {name_of(a)} -> {name_of(b)}   ({rel}:{line}: `{name_of(frm)}` uses `{name_of(to)}`)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
