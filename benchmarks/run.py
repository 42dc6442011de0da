"""Run the benchmarks one after another (``make bench``), each in its own process, JSON kept.

    .venv/bin/python -m benchmarks.run                       # every benchmark, full size (~40 min on 2 cores)
    .venv/bin/python -m benchmarks.run --quick               # small sizes: checks they all run (~5 min)
    .venv/bin/python -m benchmarks.run --only parser,shm     # a subset
    make bench BENCH_ARGS="--quick"

Results go to ``--out`` (default ``benchmarks/results/run-<UTC time>/``, one ``<name>.json``
each, plus ``summary.json``), never over the committed ``benchmarks/results/*.json``: copy a
file there when its numbers replace the ones quoted in benchmarks/README.md. Progress goes to
stderr; the exit status is 1 if any benchmark failed (the others still run).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = "{out}"  # replaced by the output file for scripts that write their own JSON

#: name -> (full arguments, quick arguments); scripts print their JSON on stdout unless OUT is passed.
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "parser": (["--json"], ["--json", "--messages", "20000", "--rounds", "3"]),
    "receive": (["--json", "--rounds", "11"], ["--json", "--messages", "50000", "--rounds", "3", "--no-pure"]),
    "shm": (["--json", "--meetings", "1000"], ["--json", "--samples", "300"]),
    "audio": (["--json"], ["--json", "--seconds", "2", "--repeat", "1"]),
    "pipeline": (["--json"], ["--json", "--seconds", "2", "--repeat", "1"]),
    "video": (["--json"], ["--json", "--rounds", "1", "--frames", "60"]),
    "consumers": (["--json"], ["--json", "--rounds", "1", "--samples", "300"]),
    "sim_load": (["--json"], ["--json", "--meetings", "10", "--seconds", "2"]),
    "wakeup": (["--meetings", "1000", "--seconds", "10", "--pm-qos"], ["--meetings", "20", "--seconds", "1", "--layout", "colocated"]),
    "e2e": (["--json", OUT], ["--quick", "--json", OUT]),
}


def run_one(name: str, quick: bool, out_dir: Path) -> dict[str, object]:
    full, short = BENCHMARKS[name]
    out_file = out_dir / f"{name}.json"
    args = [str(out_file) if a == OUT else a for a in (short if quick else full)]
    cmd = [sys.executable, str(ROOT / "benchmarks" / f"bench_{name}.py"), *args]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    elapsed = round(time.monotonic() - t0, 1)
    if OUT not in full:  # the script printed its JSON: keep the last JSON object of stdout
        text = proc.stdout.strip()
        start = text.find("{")
        if start >= 0:
            try:
                out_file.write_text(json.dumps(json.loads(text[start:]), indent=2) + "\n")
            except ValueError:
                pass
    ok = proc.returncode == 0 and out_file.exists()
    if not ok:
        (out_dir / f"{name}.log").write_text(proc.stdout[-20000:] + "\n--- stderr ---\n" + proc.stderr[-20000:])
    return {"name": name, "ok": ok, "returncode": proc.returncode, "seconds": elapsed,
            "command": " ".join(["python", f"benchmarks/bench_{name}.py", *args]), "json": str(out_file) if out_file.exists() else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (a check that everything runs, not figures to quote)")
    p.add_argument("--only", type=lambda s: [x for x in s.split(",") if x], default=list(BENCHMARKS),
                   help=f"comma-separated subset of: {','.join(BENCHMARKS)}")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    unknown = [n for n in args.only if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)}")
    out_dir = args.out or ROOT / "benchmarks" / "results" / time.strftime("run-%Y%m%dT%H%M%SZ", time.gmtime())
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for i, name in enumerate(args.only, 1):
        print(f"[{i}/{len(args.only)}] bench_{name} {'(quick) ' if args.quick else ''}...", file=sys.stderr, flush=True)
        r = run_one(name, args.quick, out_dir)
        results.append(r)
        print(f"[{i}/{len(args.only)}] bench_{name}: {'ok' if r['ok'] else 'FAILED (see ' + name + '.log)'} in {r['seconds']} s",
              file=sys.stderr, flush=True)
    (out_dir / "summary.json").write_text(json.dumps({"quick": args.quick, "results": results}, indent=2) + "\n")
    print(f"results in {out_dir}", file=sys.stderr)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
