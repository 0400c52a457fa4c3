"""Equal-budget random search for fusion and SASRec on ml-100k, selected on valid only, then 5 seeds.

Rule, fixed before the run (benchmarks/results/ml-100k-search/decision.md):

* Stage A: configurations drawn at random (rng seed 0) from each model's space below, the current default
  first; fusion and SASRec alternate, so a cut-off run leaves both with the same number.  Each configuration
  is fitted with seeds 0 and 1 (patience 20, fp32).
* Selection: for each model, the configuration with the best mean *valid* NDCG@10 over seeds 0-1.
  Test figures are stored for every fit but play no part in the choice.
* Stage B: seeds 2, 3, 4 of each selected configuration (then of each default, when it was not selected),
  so the selected fusion and the selected SASRec have 5 seeds each for the paired test on test.

Each fit is ``seed_runs.py fit`` in its own process (one torch thread, the GPU when there is one).  Launching
stops when the time left would not cover stage B; what finished is written after every fit to
``--out``: ``runs.jsonl`` (one line per fit), ``per_user.npz`` (per-user test and valid NDCG@10 by run) and
``summary.md``.

    python benchmarks/gpu_search.py --out OUT --workers 12 --deadline 520
    python benchmarks/gpu_search.py --out /tmp/x --workers 2 --deadline 120 --dry   # a quick check (epochs=1)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

COMMON = {"patience": 20, "precision": "fp32"}
TIED = {"dropout": "attn_dropout"}  # one value drawn, set on both
SHARED: dict[str, list] = {  # the transformer settings both models have, searched over the same values
    "learning_rate": [1e-3, 2e-3, 3e-3, 5e-3],
    "dropout": [0.1, 0.2, 0.3],
    "embedding_size": [64, 128],
    "n_layers": [1, 2, 3],
    "n_heads": [1, 2],
}
SPACES: dict[str, dict[str, list]] = {
    "sasrec": {**SHARED, "max_len": [50, 100, 200]},
    "fusion": {**SHARED, "max_len": [25, 50, 100], "aux_loss": [0.25, 0.5, 1.0], "long_len": [100, 200, 400],
               "drop_positions": [False, True]},
}
DEFAULTS = {  # the registry's defaults, for the first configuration of each model
    "sasrec": {"learning_rate": 1e-3, "dropout": 0.2, "embedding_size": 64, "n_layers": 2, "n_heads": 1, "max_len": 50},
    "fusion": {"learning_rate": 3e-3, "dropout": 0.2, "embedding_size": 64, "n_layers": 2, "n_heads": 1, "max_len": 50,
               "aux_loss": 0.5, "long_len": 200, "drop_positions": False},
}
SEARCH_SEEDS = (0, 1)
CONFIRM_SEEDS = (2, 3, 4)


def draw_configs(n: int, seed: int = 0) -> list[tuple[str, dict]]:
    """``n`` configurations per model, alternating fusion / SASRec, each model's default first, no repeats."""
    rng = np.random.default_rng(seed)
    per: dict[str, list[dict]] = {}
    for model, space in SPACES.items():
        configs = [dict(DEFAULTS[model])]
        seen = {json.dumps(configs[0], sort_keys=True)}
        while len(configs) < n:
            c = {k: v[int(rng.integers(len(v)))] for k, v in space.items()}
            key = json.dumps(c, sort_keys=True)
            if key not in seen:
                seen.add(key)
                configs.append(c)
        per[model] = configs
    return [(m, per[m][i]) for i in range(n) for m in ("fusion", "sasrec")]


def set_args(config: dict, dry: bool) -> list[str]:
    params = {**COMMON, **config}
    for k, twin in TIED.items():
        if k in params:
            params[twin] = params[k]
    if dry:
        params["epochs"] = 1
    return [a for k, v in params.items() for a in ("--set", f"{k}={v}")]


class Search:
    def __init__(self, out: Path, workers: int, deadline: float, dry: bool, n_configs: int) -> None:
        self.out, self.workers, self.deadline, self.dry = out, workers, deadline, dry
        self.start = time.monotonic()
        self.configs = draw_configs(n_configs)
        self.names = {}  # config index -> name
        for i, (m, _) in enumerate(self.configs):
            self.names[i] = f"{m}-c{i // 2:02d}"
        self.running: dict[tuple[int, int], tuple[subprocess.Popen, float]] = {}
        self.done: dict[tuple[int, int], dict] = {}
        self.failed: dict[tuple[int, int], str] = {}
        self.per_user: dict[str, np.ndarray] = {}
        self.fit_seconds: list[float] = []
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        self.script = Path(__file__).with_name("seed_runs.py")
        self.runs = Path(os.environ.get("TMPDIR", "/tmp")) / f"gpu_search_runs_{os.getpid()}"

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def launch(self, i: int, seed: int) -> None:
        model, config = self.configs[i]
        folder = self.runs / self.names[i]
        cmd = [sys.executable, str(self.script), "fit", model, str(seed), *set_args(config, self.dry), "--out", str(folder)]
        folder.parent.mkdir(parents=True, exist_ok=True)
        with open(folder.with_suffix(f".seed{seed}.log"), "w") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.running[(i, seed)] = (proc, self.elapsed())

    def reap(self) -> None:
        for key, (proc, started) in list(self.running.items()):
            if proc.poll() is None:
                continue
            del self.running[key]
            i, seed = key
            model = self.configs[i][0]
            folder = self.runs / self.names[i]
            js = folder / f"{model}-seed{seed}.json"
            if proc.returncode != 0 or not js.exists():
                tail = folder.with_suffix(f".seed{seed}.log").read_text()[-2000:]
                self.failed[key] = tail
                print(f"FAILED {self.names[i]} seed {seed} (rc {proc.returncode}):\n{tail}", flush=True)
                continue
            info = json.loads(js.read_text())
            arrays = np.load(js.with_suffix(".npz"))
            run = f"{self.names[i]}-s{seed}"
            self.per_user[f"{run}.test"] = arrays["ndcg@10"]
            self.per_user[f"{run}.valid"] = arrays["valid_ndcg@10"]
            self.per_user.setdefault("user", arrays["user"])
            self.done[key] = {"run": run, "config_name": self.names[i], "model": model, "seed": seed,
                              "config": self.configs[i][1], "valid": info["valid"]["ndcg@10"],
                              "test": info["test"]["ndcg@10"], "test_hit": info["test"]["hit@10"],
                              "best_epoch": info["fit_info"].get("best_epoch"),
                              "epochs_run": info["fit_info"].get("epochs_run"), "wall": info["wall_seconds"],
                              "trend": info["fit_info"].get("trend"), "finished_at": self.elapsed()}
            self.fit_seconds.append(self.elapsed() - started)
            d = self.done[key]
            print(f"[{self.elapsed():4.0f}s] {run}: valid {d['valid']:.4f} test {d['test']:.4f} "
                  f"epoch {d['best_epoch']}/{d['epochs_run']} {d['wall']:.0f}s", flush=True)
            self.write()

    def mean_valid(self, i: int) -> float | None:
        got = [self.done[(i, s)]["valid"] for s in SEARCH_SEEDS if (i, s) in self.done]
        return float(np.mean(got)) if len(got) == len(SEARCH_SEEDS) else None

    def selected(self) -> dict[str, int]:
        best: dict[str, tuple[float, int]] = {}
        for i, (m, _) in enumerate(self.configs):
            v = self.mean_valid(i)
            if v is not None and (m not in best or v > best[m][0]):
                best[m] = (v, i)
        return {m: i for m, (_, i) in best.items()}

    def fit_estimate(self) -> float:
        return float(np.median(self.fit_seconds)) if self.fit_seconds else 0.0

    def wait(self) -> None:
        """Until the running fits are done or the deadline passes."""
        while self.running and self.elapsed() < self.deadline:
            self.reap()
            time.sleep(1.0)

    def finish(self) -> None:
        """Wait, kill what still runs at the deadline, write the final files."""
        self.wait()
        for key, (proc, _) in self.running.items():
            proc.kill()
            print(f"killed at the deadline: {self.names[key[0]]} seed {key[1]}", flush=True)
        self.write(final=True)

    def run_tasks(self, tasks: list[str]) -> None:
        """Only these ``NAME:SEED`` fits (e.g. ``fusion-c04:0``), all at once; no stage B."""
        index = {name: i for i, name in self.names.items()}
        try:
            todo = [(index[name], int(seed)) for name, seed in (t.split(":") for t in tasks)]
        except (KeyError, ValueError):
            raise SystemExit(f"--tasks: expected NAME:SEED with NAME in {sorted(index)}, got {tasks}") from None
        self.workers = len(todo)  # all at once, as the summary then says
        for key in todo:
            self.launch(*key)
        self.finish()

    def run(self) -> None:
        queue = [(i, s) for i in range(len(self.configs)) for s in SEARCH_SEEDS]
        # Stage A: launch while stage B (one more fit time, after the slowest running one) still fits.
        while queue and self.elapsed() < self.deadline:
            self.reap()
            if self.failed and not self.done:
                for proc, _ in self.running.values():
                    proc.kill()
                self.write(final=True)
                raise SystemExit("the first fits failed: stopping")
            cutoff = self.deadline - 2.2 * self.fit_estimate() if self.fit_seconds else self.deadline * 0.5
            if self.elapsed() > cutoff:
                break
            while queue and len(self.running) < self.workers:
                self.launch(*queue.pop(0))
            time.sleep(1.0)
        self.wait()
        # Stage B: the selected configurations, then the defaults.
        chosen = self.selected()
        print(f"[{self.elapsed():4.0f}s] selected on valid: " + ", ".join(f"{self.names[i]} {self.configs[i][1]}" for i in chosen.values()), flush=True)
        defaults = [i for i in (0, 1) if i not in chosen.values()]
        for i in [*chosen.values(), *defaults]:
            for s in CONFIRM_SEEDS:
                self.launch(i, s)
        self.finish()

    def write(self, final: bool = False) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "runs.jsonl", "w") as f:
            f.writelines(json.dumps(d) + "\n" for d in sorted(self.done.values(), key=lambda d: d["finished_at"]))
        np.savez(self.out / "per_user.npz", **self.per_user)
        (self.out / "summary.md").write_text(self.summary(final))

    def summary(self, final: bool) -> str:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
        title = (f"# Equal-budget search, ml-100k leave-one-out ({'final' if final else 'in progress'}, "
                 f"{self.elapsed():.0f} s; {gpu}; torch {torch.__version__}; {self.workers} fits at a time)")
        lines = [title, "",
                 "| config | model | valid NDCG@10 (seeds 0-1) | test NDCG@10 (seeds 0-1) | seeds done | settings |",
                 "|---|---|---|---|---|---|"]
        chosen = set(self.selected().values())
        for i, (m, c) in enumerate(self.configs):
            runs = [self.done[(i, s)] for s in (*SEARCH_SEEDS, *CONFIRM_SEEDS) if (i, s) in self.done]
            if not runs:
                continue
            v = self.mean_valid(i)
            t = [r["test"] for r in runs if r["seed"] in SEARCH_SEEDS]
            mark = " **selected**" if i in chosen else ""
            lines.append(f"| {self.names[i]}{mark} | {m} | {'' if v is None else f'{v:.4f}'} | "
                         f"{np.mean(t):.4f} | {len(runs)} | {c} |" if t else f"| {self.names[i]} | {m} | | | {len(runs)} | {c} |")
        lines += ["", "## Five seeds (0-4)", ""]
        five = {}
        for i in range(len(self.configs)):
            seeds = [s for s in (*SEARCH_SEEDS, *CONFIRM_SEEDS) if (i, s) in self.done]
            if len(seeds) == 5:
                five[i] = seeds
                t = [self.done[(i, s)]["test"] for s in seeds]
                v = [self.done[(i, s)]["valid"] for s in seeds]
                lines.append(f"- {self.names[i]}{' (selected)' if i in chosen else ' (default)'}: test NDCG@10 "
                             f"{np.mean(t):.4f} ± {np.std(t, ddof=1):.4f} ({', '.join(f'{x:.4f}' for x in t)}), "
                             f"valid {np.mean(v):.4f}")
        pairs = [(a, b) for a in five for b in five if self.configs[a][0] == "fusion" and self.configs[b][0] == "sasrec"]
        if pairs:
            from recfuse.evaluate.significance import paired_test

            for a, b in pairs:
                pa = np.mean([self.per_user[f"{self.names[a]}-s{s}.test"] for s in five[a]], axis=0)
                pb = np.mean([self.per_user[f"{self.names[b]}-s{s}.test"] for s in five[b]], axis=0)
                t = paired_test(pa, pb)
                lines.append(f"- {self.names[a]} / {self.names[b]} = {pa.mean() / pb.mean():.3f}; paired Wilcoxon over "
                             f"{t['n']} users p = {t['wilcoxon_p']:.3g}, paired t p = {t['ttest_p']:.3g}")
        if self.failed:
            lines += ["", f"{len(self.failed)} fits failed: " + ", ".join(f"{self.names[i]} s{s}" for i, s in self.failed)]
        return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=12, help="fits at a time")
    ap.add_argument("--deadline", type=float, default=520.0, help="seconds; fits still running then are killed")
    ap.add_argument("--configs", type=int, default=24, help="configurations per model, at most")
    ap.add_argument("--dry", action="store_true", help="one epoch per fit: a check of the machinery")
    ap.add_argument("--tasks", default="", help="comma-separated NAME:SEED fits to run alone (finishing a cut-off run)")
    args = ap.parse_args()
    search = Search(args.out, args.workers, args.deadline, args.dry, args.configs)
    if args.tasks:
        search.run_tasks(args.tasks.split(","))
    else:
        search.run()


if __name__ == "__main__":
    main()
