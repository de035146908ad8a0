"""Establish a notebook's truth without repro: run it N times with plain nbclient.

Each run is a stock kernel (its own random hash seed unless --hash-seed), and after every
code cell a silent request digests each user variable (tensors, arrays and modules by
their bytes, everything else by pickle or repr).  Prints, per code cell, whether outputs
(stream text joined, as a person reads it) or variables differ between the runs.

    python tests/corpus/establish.py tests/corpus/autograd.ipynb [--runs 2] [--seeded]

This is the by-hand check behind truths.json; it is independent of repro's engine.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import nbclient
import nbformat

DIGEST = r"""
def __corpus_digest():
    import hashlib, pickle, sys, types
    out = {}
    for name, value in list(globals().items()):
        if name.startswith("_") or name in ("In", "Out", "exit", "quit", "get_ipython"):
            continue
        if isinstance(value, (types.ModuleType, types.FunctionType, type)):
            continue
        h = hashlib.sha256()
        try:
            torch = sys.modules.get("torch")
            np = sys.modules.get("numpy")
            if torch is not None and hasattr(value, "state_dict") and callable(value.state_dict):
                def feed(obj):
                    if isinstance(obj, torch.Tensor):
                        h.update(obj.detach().cpu().numpy().tobytes())
                    elif isinstance(obj, dict):
                        for k in obj:
                            h.update(repr(k).encode()); feed(obj[k])
                    elif isinstance(obj, (list, tuple)):
                        for v in obj:
                            feed(v)
                    else:
                        h.update(repr(obj).encode())
                feed(value.state_dict())
            elif torch is not None and isinstance(value, torch.Generator):
                h.update(value.get_state().numpy().tobytes())
            elif torch is not None and isinstance(value, torch.Tensor):
                h.update(value.detach().cpu().numpy().tobytes())
            elif np is not None and isinstance(value, np.ndarray):
                raw = value.tobytes() if value.dtype != object else repr(value.tolist()).encode()
                h.update(raw)
            else:
                try:
                    h.update(pickle.dumps(value))
                except Exception:
                    h.update(repr(value).encode())
        except Exception as exc:
            h.update(repr(exc).encode())
        out[name] = h.hexdigest()[:12]
    return out
"""


KINDS = ("stdout", "stderr", "display")
ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def _text(outputs):
    streams, rest = {"stdout": "", "stderr": ""}, []
    for o in outputs:
        if o["output_type"] == "stream":
            streams[o["name"]] += o["text"]
        elif o["output_type"] == "error":
            rest.append(o["ename"] + ": " + o["evalue"])
        else:
            data = o.get("data", {})
            rest.append(data.get("text/plain", "") + " png:" + str(hash(data.get("image/png", ""))))

    # addresses vary by nature; the screen after \r is what a person reads
    def screen(text):
        return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))

    rest = [ADDRESS.sub(" at 0x…", r) for r in rest]
    return (
        screen(ADDRESS.sub(" at 0x…", streams["stdout"])),
        ADDRESS.sub(" at 0x…", streams["stderr"]),
        rest,
    )


def run(path: Path, hash_seed: str | None, folder: Path) -> list[dict]:
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ)
    env.pop("PYTHONHASHSEED", None)
    if hash_seed is not None:
        env["PYTHONHASHSEED"] = hash_seed
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    cells = []
    with client.setup_kernel(env=env):
        client.kc.execute(DIGEST, silent=True, store_history=False)
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            client.execute_cell(cell, index)
            msg = client.kc.execute(
                "",
                silent=True,
                store_history=False,
                user_expressions={"d": "__import__('json').dumps(__corpus_digest())"},
            )
            reply = client.wait_for_reply(msg)
            expr = reply["content"]["user_expressions"]["d"]
            variables = json.loads(ast.literal_eval(expr["data"]["text/plain"]))
            cells.append(
                {
                    "index": index,
                    "id": cell.get("id"),
                    "outputs": _text(cell.outputs),
                    "variables": variables,
                }
            )
    return cells


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("notebook")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--hash-seed", default=None)
    parser.add_argument("--seeded", action="store_true", help="prepend %%load_ext repro, %%repro 0")
    args = parser.parse_args()
    source = Path(args.notebook).resolve()
    folder = Path(tempfile.mkdtemp())
    for extra in source.parent.glob("*.csv"):
        shutil.copy(extra, folder)
    path = folder / source.name
    nb = nbformat.read(source, as_version=4)
    if args.seeded:
        cell = nbformat.v4.new_code_cell("%load_ext repro\n%repro 0")
        cell["id"] = "repro-seed"
        nb.cells.insert(0, cell)
    nbformat.write(nb, path)
    runs = [run(path, args.hash_seed, folder) for _ in range(args.runs)]
    first = None
    for n, cells in enumerate(zip(*runs, strict=True), 1):
        a, b = cells[0], cells[1]
        out = [k for k, x, y in zip(KINDS, a["outputs"], b["outputs"], strict=True) if x != y]
        var = sorted(
            k
            for k in set(a["variables"]) | set(b["variables"])
            if a["variables"].get(k) != b["variables"].get(k)
        )
        mark = "DIFF" if out or var else "same"
        if (out or var) and first is None:
            first = n
        where = f"code cell {n} (index {a['index']}, id {a['id']})"
        print(f"{where}: {mark} outputs={out} variables={var}")
        for x, y in zip(a["outputs"], b["outputs"], strict=True):
            if x != y:
                print("   run1:", repr(x)[:300])
                print("   run2:", repr(y)[:300])
    print("FIRST DIFFERING CODE CELL:", first)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
