"""The README's corpus table from a run of the corpus tests.

    REPRO_CORPUS_TABLE=/tmp/corpus.jsonl python -m pytest tests/test_corpus.py
    python tests/corpus/table.py /tmp/corpus.jsonl

One row per case: the truth (from truths.json), the verdict and the cell repro verify
named, whether both are right, and the seconds the command took.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _verdict(value: bool | None) -> str:
    return {True: "reproducible", False: "NOT reproducible", None: "cannot verify"}[value]


def table(rows: list[dict]) -> str:
    lines = [
        "| case | truth | cause (id) | verify says | cell named | right? | cause said | time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda r: (r["case"].startswith("trap-"), r["case"])):
        truth_cell = row["truth_cell"] or "–"
        cell = row["cell"] or "–"
        right = row["truth"] is row["verdict"] and (row["truth"] or truth_cell == cell)
        args = f" `{' '.join(row['args'])}`" if row["args"] else ""
        said = "; ".join(row.get("causes") or []) or "–"
        if row.get("fix") and row["fix"] not in row.get("fixes", ""):
            said += f" (**not** `{row['fix']}`)"
        lines.append(
            f"| {row['case']}{args} | {_verdict(row['truth'])} | {truth_cell} "
            f"| {_verdict(row['verdict'])} | {cell} | {'yes' if right else '**no**'} "
            f"| {said} | {row['seconds']:.1f} s |"
        )
    wrong = sum("| **no** |" in line for line in lines)
    advice = sum("(**not**" in line for line in lines)
    lines.append("")
    lines.append(
        f"{len(rows)} cases: {wrong} wrong verdict or cell; {advice} with a cause or fix "
        "other than the issue's."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    path = Path(sys.argv[1])
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        rows[row["case"]] = row  # the last run of a case wins
    print(table(list(rows.values())))
