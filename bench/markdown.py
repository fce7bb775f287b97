"""``python -m bench.markdown RESULTS.json``: a run's tables in Markdown (for the README)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.report import markdown


def main() -> None:
    print(markdown(json.loads(Path(sys.argv[1]).read_text())), end="")


if __name__ == "__main__":
    main()
