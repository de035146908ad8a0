"""Write the designed traps as notebooks (``python tests/corpus/traps/build.py``).

Each trap is a list of cells: ``("md", text)`` or ``("code", source, tags)``.  Cell ids
are ``cell-<index>``, so truths.json can name a cell.  Their truths, and why, are in
``tests/corpus/truths.json``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).parent

TRAINING = """\
%%repro 0 --verify 3
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
xs, ys = torch.randn(64, 4), torch.randn(64, 1)
for step in range(20):
    loss = torch.nn.functional.mse_loss(model(xs), ys)
    opt.zero_grad()
    loss.backward()
    opt.step()
print(f"final loss {loss.item():.6f}")"""

TRAPS: dict[str, list[tuple]] = {
    # ipykernel flushes stdout in timing-dependent chunks: the text is the same.
    "print_loop_sleep": [
        ("md", "A deterministic loop that prints, with pauses between lines."),
        ("code", "import time\nimport math"),
        (
            "code",
            "total = 0.0\nfor step in range(40):\n    total += math.sin(step)\n"
            "    print(f'step {step:3d} total {total:+.6f}', flush=step % 3 == 0)\n"
            "    time.sleep(0.01 * (step % 4))",
        ),
        (
            "code",
            "import sys\nfor i in range(5):\n    print('out', i)\n"
            "    print('err', i, file=sys.stderr)\n"
            "    time.sleep(0.02)\nprint('done', total)",
        ),
    ],
    # tqdm-style progress: the screen shows one line, rewritten with \r.
    "progress_cr": [
        ("md", "A progress line rewritten with carriage returns, as tqdm does."),
        ("code", "import sys, time"),
        (
            "code",
            "n = 30\nfor i in range(n + 1):\n"
            "    bar = '#' * (i * 20 // n)\n"
            "    sys.stdout.write(f'\\r[{bar:<20}] {i}/{n}')\n"
            "    sys.stdout.flush()\n"
            "    time.sleep(0.01 + 0.02 * (i % 3 == 0))\n"
            "print()\nprint('finished', n)",
        ),
    ],
    # Worker processes draw from seeds the main process picks at random.
    "dataloader_workers": [
        ("md", "Random augmentation inside DataLoader workers; nothing is seeded."),
        ("code", "import torch\nfrom torch.utils.data import DataLoader, Dataset"),
        (
            "code",
            "class Noisy(Dataset):\n    def __len__(self):\n        return 16\n"
            "    def __getitem__(self, i):\n"
            "        return torch.full((3,), float(i)) + 0.1 * torch.rand(3)\n\n"
            "loader = DataLoader(Noisy(), batch_size=4, num_workers=2)",
        ),
        ("code", "batches = [b for b in loader]\nmean = torch.stack(batches).mean()"),
        ("code", "print(f'mean {mean.item():.6f}')"),
    ],
    # Run ids and timings vary by nature; untagged, they are differences.
    "run_ids": [
        ("md", "A run id and a timing, untagged."),
        ("code", "import time, uuid\nrun_id = uuid.uuid4().hex\nstarted = time.perf_counter()"),
        ("code", "result = sum(i * i for i in range(10_000))\nprint(result)"),
        ("code", "print(f'took {time.perf_counter() - started:.6f} s')"),
    ],
    "run_ids_tagged": [
        (
            "md",
            "The same run id and timing, tagged: the first cell is ignored, the last one's output.",
        ),
        (
            "code",
            "import time, uuid\nrun_id = uuid.uuid4().hex\nstarted = time.perf_counter()",
            ["repro-ignore"],
        ),
        ("code", "result = sum(i * i for i in range(10_000))\nprint(result)"),
        ("code", "print(f'took {time.perf_counter() - started:.6f} s')", ["repro-ignore-output"]),
    ],
    # str hashing is salted per process unless PYTHONHASHSEED is set.
    "set_order": [
        ("md", "The order of a set of strings."),
        ("code", "words = 'the quick brown fox jumps over the lazy dog again and again'.split()"),
        ("code", "vocab = set(words)\nindex = {w: i for i, w in enumerate(vocab)}"),
        ("code", "print(sorted(index.items(), key=lambda kv: kv[1])[:3])"),
    ],
    # ints hash to themselves: the order of a set of small ints is fixed.
    "set_of_ints": [
        ("md", "A control: the order of a set of small ints does not depend on the hash seed."),
        ("code", "numbers = {5, 3, 17, 1, 99, 42, 8}\norder = list(numbers)\nprint(order)"),
        ("code", "lookup = {n: str(n) for n in numbers}\nprint(list(lookup.values()))"),
    ],
    # Accumulation order across threads: float sums differ in the last bits.  With 10**6
    # elements torch 2.13 here mostly ran it serially (1 distinct result in 9 runs on a loaded
    # 2-core machine); 4 * 10**6 into 1000 bins gave 7 distinct results in 7 runs.
    "index_put_accumulate": [
        ("md", "index_put_ with accumulate=True over 4 * 10**6 elements on 2 threads."),
        (
            "code",
            "import torch\ntorch.set_num_threads(2)\ng = torch.Generator().manual_seed(0)\n"
            "idx = torch.randint(0, 1000, (4 * 10**6,), generator=g)\n"
            "vals = torch.rand(4 * 10**6, generator=g)",
        ),
        ("code", "acc = torch.zeros(1000).index_put_((idx,), vals, accumulate=True)"),
        ("code", "print(acc.sum().item())"),
    ],
    # The most common cell, verified twice in a row (loss is bound before it is read).
    "verify_twice": [
        ("md", "A training cell under `%%repro 0 --verify 3`, run twice in a row."),
        ("code", "%load_ext repro\nimport torch"),
        ("code", TRAINING),
        ("code", TRAINING),
    ],
    # A seeded notebook recorded with --save, then edited in markdown only.
    "against_base": [
        ("md", "# Recorded\nA seeded notebook."),
        ("code", "%load_ext repro\n%repro 0"),
        ("code", "import numpy as np\nx = np.random.rand(5)\nprint(x.round(4))"),
        ("md", "The mean:"),
        ("code", "m = float(x.mean())\nm"),
    ],
}


def build(name: str, cells: list[tuple]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for index, spec in enumerate(cells):
        if spec[0] == "md":
            cell = nbformat.v4.new_markdown_cell(spec[1])
        else:
            cell = nbformat.v4.new_code_cell(spec[1])
            if len(spec) > 2:
                cell.metadata["tags"] = list(spec[2])
        cell["id"] = f"cell-{index}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


if __name__ == "__main__":
    for name, cells in TRAPS.items():
        nbformat.write(build(name, cells), HERE / f"{name}.ipynb")
        print(name)
