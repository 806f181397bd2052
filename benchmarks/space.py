"""Design-space speed: building a space from a blueprint, counting it, decoding configurations.

Run:  python benchmarks/space.py [--decode 10000]
Prints a table and writes the section "Design spaces" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from intake import machine, write_section  # noqa: E402

from bsopt.space.design_space import load_design_space  # noqa: E402


def measure(path: Path, n_decode: int) -> dict:
    t0 = time.perf_counter()
    space = load_design_space(path)
    t1 = time.perf_counter()
    total = space.get_total_combinations()
    t2 = time.perf_counter()
    step = max(total // n_decode, 1)
    decoded = min(n_decode, total)
    for i in range(decoded):
        space.config((i * step) % total)
    t3 = time.perf_counter()
    streamed = sum(1 for _ in itertools.islice(space.iter_configs(total // 3), n_decode))
    t4 = time.perf_counter()
    return {
        "name": path.stem,
        "format": space.blueprint.format,
        "choices": len(space.choice_parameters),
        "total": total,
        "load_ms": (t1 - t0) * 1e3,
        "count_us": (t2 - t1) * 1e6,
        "decode_us": (t3 - t2) / decoded * 1e6,
        "stream_us": (t4 - t3) / streamed * 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decode", type=int, default=2000, help="configurations to decode per space")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()
    os.environ.setdefault("BSOPT_MODEL_CACHE", str(Path(tempfile.gettempdir()) / "bsopt_bench_models"))
    for p in sorted((ROOT / "search_spaces").glob("[a-z]*.yaml")):  # warm the zoo export cache
        load_design_space(p)
    rows = [measure(p, args.decode) for p in sorted((ROOT / "search_spaces").glob("[a-z]*.yaml"))]
    lines = [
        "## Design spaces",
        "",
        f"`python benchmarks/space.py --decode {args.decode}` on {machine()}, for the example blueprints in `search_spaces/` (zoo models already "
        "exported). *load*: read the blueprint, lower the model, build the parameters; *count*: exact "
        "product; *decode*: BuildConfig number k by random access; *stream*: next BuildConfig from an "
        "iterator. Nothing is enumerated: the count of a space of 10^29 configurations costs microseconds.",
        "",
        "| blueprint | format | choice points | configurations | load ms | count µs | decode µs/config | stream µs/config |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['format']} | {r['choices']} | {r['total']:.3g} | {r['load_ms']:.0f} | "
            f"{r['count_us']:.1f} | {r['decode_us']:.0f} | {r['stream_us']:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    write_section(args.out, "## Design spaces", text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
