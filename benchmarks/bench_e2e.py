"""End-to-end comparison (the gateway, Zoom's SDK, a plain asyncio client, bare picows): see gateway/bench.py.

    python benchmarks/bench_e2e.py [--quick] [--json benchmarks/results/e2e.json] [--plot benchmarks/results/e2e.png]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gateway.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
