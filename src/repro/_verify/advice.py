"""Why a result differed, and what to do about it: one cause, one fix, at every scale.

The causes are found from what verify saw (a global stream that differed before
the cell, a difference that went away with the hash seed pinned, a numeric
difference with every stream equal) and from the code that differed (an
unseeded generator, the clock, DataLoader workers). Each report ends with the
fix for each cause it found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "BOOTSTRAP",
    "DATALOADER",
    "EARLIER",
    "GLOBAL_STREAMS",
    "HASHING",
    "NONDETERMINISTIC_OP",
    "OS_SEEDED",
    "OUTPUT_PREFIXES",
    "THREADS",
    "UNKNOWN",
    "VARYING",
    "WORKERS",
    "Cause",
    "causes_in_code",
    "causes_of",
    "clues",
    "global_draw",
]


@dataclass(frozen=True)
class Cause:
    """A reason results differ, and its fix."""

    name: str
    fix: str
    #: what in the code or the runs points at it (``np.random.default_rng()``, ``NumPy``)
    evidence: str = ""

    def __str__(self) -> str:
        found = f" ({self.evidence})" if self.evidence else ""
        return f"{self.name}{found}: {self.fix}"

    def with_evidence(self, evidence: str) -> Cause:
        """The same cause, saying what points at it."""
        return Cause(self.name, self.fix, evidence)


GLOBAL_STREAMS = Cause(
    "unseeded global random streams",
    "put `%load_ext repro` and `%repro SEED` in the first code cell",
)
OS_SEEDED = Cause(
    "a generator seeded from the operating system",
    "create it with `repro.rng()` (seeded from the session) or pass it a seed",
)
HASHING = Cause(
    "str hashing (set order, hash())",
    "iterate over `sorted(...)` instead of a set, or run the notebook in a kernel with a fixed "
    "hash seed: `repro kernel install --hash-seed 0`",
)
DATALOADER = Cause(
    "DataLoader workers",
    "pass `**repro.dataloader_kwargs()` to the DataLoader (seeded workers and generator)",
)
VARYING = Cause(
    "a value that varies by nature (time, uuid, temporary path, process id)",
    "tag the cell `repro-ignore-output` (its variables still compared) or `repro-ignore`, "
    "or leave the variable out with `--ignore NAME`",
)
NONDETERMINISTIC_OP = Cause(
    "a nondeterministic operation (floating-point sums in no fixed order)",
    "run with the `debug` profile (`%repro SEED -p debug`), which makes torch raise on "
    "nondeterministic ops and names the op",
)
UNINITIALIZED = Cause(
    "uninitialised memory (`empty`: whatever was in memory)",
    "fill it before it is read or shown (`torch.zeros`, `np.zeros`, `.fill_()`), or leave the "
    "value out of what is compared",
)
BOOTSTRAP = Cause(
    "seaborn's bootstrap (confidence intervals), seeded from the operating system",
    "pass `seed=0` to the seaborn call: its bootstrap makes a new generator from OS entropy "
    "unless given a seed, which no global seed (`%repro`, `np.random.seed`) reaches",
)
WORKERS = Cause(
    "joblib's worker processes (`n_jobs`), whose NumPy stream is not the notebook's",
    "pass `random_state=0` to each estimator and splitter the cell runs (in a worker, one "
    "without it draws from that process's own unseeded stream, which `%repro` cannot reach), "
    "or run with `n_jobs=1`",
)
THREADS = Cause(
    "threads that race (which thread runs first, and draws or appends first, varies)",
    'give each task its own generator from its index (`repro.rng(f"task {i}")`) or draw '
    "before the threads start, and gather results by task (`pool.map`), not as they finish",
)
UNKNOWN = Cause(
    "no known cause found in the cell's code",
    "look for what the values listed above depend on outside the cell (a function, a file, "
    "the network); `%%repro SEED --verify` on one cell shows which of its values differ",
)

#: (cause, pattern in the code): the code that points at each cause.
_CLUES: tuple[tuple[Cause, re.Pattern[str]], ...] = (
    (
        OS_SEEDED,
        re.compile(
            r"\b(?:default_rng|RandomState|SeedSequence|Random|Generator|SystemRandom)\(\s*\)"
            r"|\b(?:np\.random|numpy\.random|random)\.seed\(\s*\)"
        ),
    ),
    (DATALOADER, re.compile(r"\bnum_workers\s*=\s*(?!0\b)\w+")),
    (WORKERS, re.compile(r"\bn_jobs\s*=\s*(?!1\b|None\b)-?\w+")),
    (
        THREADS,
        re.compile(
            r"\b(?:ThreadPoolExecutor|ThreadPool|thread_map|threading\.Thread)\("
            r"|\bas_completed\("
        ),
    ),
    (
        UNINITIALIZED,
        re.compile(r"\b(?:torch|np|numpy)\.empty(?:_like|_strided)?\(|\.new_empty\("),
    ),
    (
        VARYING,
        re.compile(
            r"\b(?:time\.(?:time|perf_counter|monotonic|process_time|thread_time)(?:_ns)?"
            r"|datetime\.(?:now|today|utcnow)|date\.today|uuid[14]"
            r"|mkdtemp|mkstemp|TemporaryDirectory|NamedTemporaryFile|gettempdir"
            r"|os\.getpid|os\.urandom|secrets\.\w+|Timestamp\.(?:now|today)"
            r"|timeit\.default_timer)\s*\("
            # a benchmark: timeit's and torch.utils.benchmark's Timer(...).timeit(n), autorange
            r"|\.(?:timeit|(?:blocked_|adaptive_)?autorange)\s*\(|(?<![\w.%])timeit\("
            # ``from time import time, perf_counter``: the bare call, which takes no arguments
            r"|(?<![\w.])(?:time|perf_counter|monotonic|process_time|default_timer)(?:_ns)?"
            r"\(\s*\)"
            r"|\bdatetime64\(\s*['\"](?:now|today)"
        ),
    ),
)


#: Draws from a global stream (Python's, NumPy's legacy one, torch's default generator).
_GLOBAL_DRAW = re.compile(
    r"\b(?:np|numpy)\.random\.(?!default_rng|Generator|SeedSequence|RandomState|BitGenerator"
    r"|PCG64|Philox|MT19937|SFC64)[a-z_]+\("
    r"|\brandom\.(?:random|randint|choice|choices|shuffle|sample|uniform|gauss|randrange)\("
    r"|\btorch\.(?:rand|randn|randint|randperm|normal|bernoulli|multinomial|poisson)"
    r"(?:_like)?\("
    # scipy.stats draws from NumPy's global stream unless given a random_state
    r"|\.rvs\((?![^)]*random_state)"
)


#: Leaves that hold a duration a library measured: scikit-learn's ``cv_results_['mean_fit_time']``,
#: ``refit_time_``, ``cross_validate``'s ``fit_time``; anything named ``*_time`` or ``*elapsed*``.
_TIMING_LEAF = re.compile(r"(?:^|[^a-z])(?:\w*_)?(?:time|elapsed|duration)_?(?:['\"\]]|$)", re.I)


def timing_leaf(path: str) -> bool:
    """Whether a variable leaf's path names a duration (``cv_results_['mean_fit_time']``)."""
    return _TIMING_LEAF.search(path) is not None


#: How a report names what a cell printed or showed, not a variable of it.
OUTPUT_PREFIXES = ("stdout", "stderr", "displayed", "display ")


def timing_leaves(items: list) -> Cause | None:
    """VARYING when every differing variable leaf is named as a duration (a fitted search's
    timings), with the leaves as evidence; else None."""
    named = [f"{i.output}{i.where}" for i in items if i.where or i.output]
    variables = [n for n in named if not n.startswith(OUTPUT_PREFIXES)]
    if variables and all(_TIMING_LEAF.search(n) for n in variables):
        shown = ", ".join(f"`{n}`" for n in variables[:3])
        return VARYING.with_evidence(f"durations a library measured: {shown}")
    return None


_ASSIGNED = re.compile(r"\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*[-+*/]?=(?!=)")


def _pattern(cause: Cause) -> re.Pattern[str]:
    """The pattern of :data:`_CLUES` that points at ``cause`` (by its name)."""
    return next(pattern for clue, pattern in _CLUES if clue.name == cause.name)


def _unused(body: str, cause: Cause) -> bool:
    """Whether every line of a function's ``body`` that holds ``cause``'s clue assigns a local
    that no other line reads (``stamp = datetime.now()`` and nothing more): no result of the
    function can hold it."""
    pattern = _pattern(cause)
    lines = body.splitlines()
    for i, line in enumerate(lines):
        if not pattern.search(line):
            continue
        match = _ASSIGNED.match(line)
        if match is None:
            return False  # read where it is made: printed, returned, passed on
        names = [n.strip() for n in match.group(1).split(",")]
        rest = "\n".join(lines[:i] + lines[i + 1 :])
        if any(re.search(rf"\b{re.escape(n)}\b", rest) for n in names):
            return False
    return True


def assigned_from(code: str, cause: Cause) -> set[str]:
    """The names the code assigns on a line that holds ``cause``'s clue (``start = time()``,
    ``run_id = uuid4()``): the variables that hold what varies."""
    pattern = _pattern(cause)
    names: set[str] = set()
    for line in code.splitlines():
        if pattern.search(line) and (match := _ASSIGNED.match(line)) is not None:
            names |= {name.strip() for name in match.group(1).split(",")}
    return names


def global_draw(code: str) -> Cause | None:
    """The unseeded-global-streams cause if ``code`` draws from a global stream, else None."""
    match = _GLOBAL_DRAW.search(code)
    return GLOBAL_STREAMS.with_evidence(f"`{match.group(0)}`") if match else None


def causes_in_code(code: str) -> list[Cause]:
    """The causes the code points at, each once, with the code that points at it."""
    found = []
    for cause, pattern in _CLUES:
        match = pattern.search(code)
        if match is None:
            continue
        if cause is OS_SEEDED and "Generator()" in match.group(0) and "manual_seed" in code:
            continue  # torch.Generator().manual_seed(n): seeded after all
        found.append(cause.with_evidence(f"`{match.group(0).strip()}`"))
    bootstrap = _unseeded_bootstrap(code)
    if bootstrap is not None:
        found.append(BOOTSTRAP.with_evidence(f"`{bootstrap}`"))
    return found


#: seaborn's calls that bootstrap a confidence interval by default (``errorbar=("ci", 95)``,
#: ``ci=95``): bars, points and lines, regression bands, and the figure-level calls over them.
_BOOTSTRAPPING = re.compile(
    r"\b(?:sns|seaborn)\.(?:barplot|pointplot|lineplot|regplot|lmplot|catplot|relplot)\("
)


def _unseeded_bootstrap(code: str) -> str | None:
    """The first seaborn call that bootstraps without ``seed=`` (``sns.barplot(``), else None:
    its arguments read to their closing parenthesis, nested calls and all."""
    for match in _BOOTSTRAPPING.finditer(code):
        depth, end = 1, match.end()
        while end < len(code) and depth:
            depth += {"(": 1, ")": -1}.get(code[end], 0)
            end += 1
        arguments = code[match.end() : end]
        if re.search(r"\bseed\s*=", arguments) is None and "errorbar=None" not in arguments:
            return match.group(0)
    return None


_LOADER = re.compile(r"(\w+)\s*=\s*(?:[\w.]+\.)?DataLoader\((.*?)\)\s*$", re.M | re.S)


def loader_in_use(earlier: str, code: str) -> Cause | None:
    """DataLoader workers as a cause when ``code`` uses a loader that an earlier cell built
    with workers (``loader = DataLoader(..., num_workers=2)``): the draws in the workers
    differ, though the cell that iterates the loader holds no clue itself."""
    workers = dict(_CLUES)[DATALOADER]
    for match in _LOADER.finditer(earlier):
        name, arguments = match.group(1), match.group(2)
        clue = workers.search(arguments)
        if clue is not None and re.search(rf"\b{re.escape(name)}\b", code):
            return DATALOADER.with_evidence(f"`{name}` built with `{clue.group(0).strip()}`")
    return None


_MAGIC_LINE = re.compile(r"^\s*[%!].*$", re.M)


def definitions_used(earlier: str, code: str, depth: int = 3) -> list[tuple[str, str]]:
    """``(name, source)`` of each function or class an earlier cell defined that ``code`` uses
    (calls or passes on), following the names those use in turn, ``depth`` levels: the draw
    from ``np.random.default_rng()`` or the ``time()`` inside ``estimate_pi`` is the cause of the
    cell that calls ``estimate_pi(100)``."""
    import ast

    def parse(text: str) -> ast.Module | None:
        try:
            return ast.parse(_MAGIC_LINE.sub("", text))
        except SyntaxError:
            return None

    earlier_tree = parse(earlier)
    if earlier_tree is None:
        return []
    text = _MAGIC_LINE.sub("", earlier)
    defined: dict[str, str] = {}
    for node in earlier_tree.body:  # top level, in order: a later def replaces an earlier one
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined[node.name] = ast.get_source_segment(text, node) or ""

    def names(source: str) -> set[str]:
        tree = parse(source)
        if tree is None:
            return set()
        return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}

    found: dict[str, str] = {}
    frontier = names(code)
    for _ in range(depth):
        new = {n for n in frontier if n in defined and n not in found}
        if not new:
            break
        frontier = set()
        for name in sorted(new):
            found[name] = defined[name]
            frontier |= names(defined[name])
    return list(found.items())


#: How a clue found in a function or class that an earlier cell defined says where it is.
EARLIER = "an earlier cell's"


def clues(code: str, earlier: str = "") -> list[Cause]:
    """What a cell's ``code`` points at, each cause once, in this order: its own code; the
    functions and classes of ``earlier`` cells that it uses (evidence "... in `NAME`, an
    earlier cell's"); a DataLoader with workers that an earlier cell built and it uses."""
    found = causes_in_code(code)
    for name, body in definitions_used(earlier, code):
        found += [
            clue.with_evidence(f"{clue.evidence} in `{name}`, {EARLIER}")
            for clue in causes_in_code(body)
            if not (clue.name == VARYING.name and _unused(body, clue))
        ]
    loader = loader_in_use(earlier, code)
    found += [loader] if loader is not None else []
    named: dict[str, Cause] = {}
    for clue in found:
        named.setdefault(clue.name, clue)
    return list(named.values())


def causes_of(code: str, numeric: bool) -> list[Cause]:
    """The causes for code that ran seeded and still differed: what its code points at; else
    a nondeterministic op if only numbers differ (``numeric``); else no known cause."""
    found = causes_in_code(code)
    if found:
        return found
    return [NONDETERMINISTIC_OP if numeric else UNKNOWN]
