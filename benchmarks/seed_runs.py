"""Fit models seed by seed in separate processes, keep per-user test metrics, then compare.

`recfuse benchmark` runs every seed in one process; this script runs one
(model, seed) per call and stores its per-user test NDCG@10 / HR@10 under
``--out`` (``MODEL-seedN.npz`` + ``.json``), so seeds can run side by side
(one torch thread each on a 2-core machine; the per-user valid metrics ride
along as ``valid_*``) and a run that is cut off keeps
the seeds it finished.  A fusion model with per-user vectors (``user_emb``) is also scored with every
query's user hidden (``MODEL_anon``: what a user the model never saw, with the same history, gets).
``compare`` then prints the leaderboard and a paired
Wilcoxon signed-rank test (per-user metric averaged over the seeds both
models have), the same statistic `recfuse benchmark` reports.

    python benchmarks/seed_runs.py fit sasrec 0 --set patience=20 --out benchmarks/results/ml-100k-fusion-p20
    python benchmarks/seed_runs.py fit fusion 0 --set patience=20 --out benchmarks/results/ml-100k-fusion-p20
    python benchmarks/seed_runs.py compare fusion sasrec --out benchmarks/results/ml-100k-fusion-p20 [--seeds 5-9]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

SPLITS = ("loo", "loo-valid5", "temporal-events")


def fit(model: str, seed: int, sets: list[str], dataset: str, out: Path, split_kind: str = "loo",
        cold_users: int | None = None, fold_in: list[int] | None = None) -> None:
    import torch
    import typer

    from recfuse.data.registry import load_dataset
    from recfuse.data.split import SPLITS as BUILD
    from recfuse.data.split import hold_out_users
    from recfuse.evaluate.cli import parse_overrides
    from recfuse.evaluate.protocol import evaluate
    from recfuse.evaluate.runner import fit_and_evaluate

    try:
        params = parse_overrides([f"{model}.{item}" for item in sets], [model]).get(model, {})
    except typer.BadParameter as e:
        raise SystemExit(f"--set: {e}") from None
    split = BUILD[split_kind](load_dataset(dataset))
    users, valid_users = split.test.queries.user, split.valid.queries.user  # before any is hidden
    cold = np.zeros(split.full.n_users, dtype=bool)
    if cold_users is not None:  # fold `cold_users` of 5 of the users: never trained on, asked as unknown users
        split = hold_out_users(split, cold_users)
        cold[split.info["cold_users"]] = True
    started = time.perf_counter()
    fitted: dict = {}
    untrended: dict = {}
    anonymous: dict = {}
    folded: dict[int, dict] = {}

    def after_fit(m: object) -> None:
        fitted.update(getattr(m, "fit_info", None) or {})
        config = getattr(m, "config", None)
        if getattr(config, "user_emb", False):  # every user as one the model never saw
            hide = lambda e: replace(e, queries=replace(e.queries, user=np.full(len(e), -1, np.int64)))
            if cold_users is None:
                anonymous.update(valid=evaluate(m, hide(split.valid), split.train, (10,)),
                                 test=evaluate(m, hide(split.test), split.train, (10,)))
            chosen = config.fold_in
            for steps in fold_in or []:  # the unknown users' vectors folded in from their histories
                config.fold_in = steps
                folded[steps] = {"valid": evaluate(m, split.valid, split.train, (10,)),
                                 "test": evaluate(m, split.test, split.train, (10,))}
            config.fold_in = chosen
        alpha = getattr(getattr(m, "module", None), "trend_alpha", None)
        if alpha is not None:  # a calibrated trend term: the same fit scored without it, for a paired test
            chosen = float(alpha)
            alpha.fill_(0.0)
            untrended.update(valid=evaluate(m, split.valid, split.train, (10,)), test=evaluate(m, split.test, split.train, (10,)))
            alpha.fill_(chosen)

    run = fit_and_evaluate(model, params, seed, split, (10,), True, quiet=True, after_fit=after_fit)
    wall = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    results = [(model, run.valid, run.test, params)]
    if untrended:
        results.append((f"{model}_notrend", untrended["valid"], untrended["test"], {**params, "trend_alpha": 0.0}))
    if anonymous:  # the same fit, every query as an unknown user's (the zero user vector): a new user's history
        results.append((f"{model}_anon", anonymous["valid"], anonymous["test"], {**params, "users": "unknown"}))
    for steps, r in folded.items():  # the same fit, unknown users folded in
        results.append((f"{model}_foldin{steps}", r["valid"], r["test"], {**params, "fold_in": steps}))
    if cold_users is not None:
        results = [(n, v, t, {**p, "cold_users": f"fold {cold_users} of 5"}) for n, v, t, p in results]
    for name, valid, test, p in results:
        stem = out / f"{name}-seed{seed}"
        np.savez(stem.with_suffix(".npz"), user=users, valid_user=valid_users, cold=cold[users],
                 valid_cold=cold[valid_users],
                 **{k: np.asarray(v) for k, v in test.per_query.items()},
                 **{f"valid_{k}": np.asarray(v) for k, v in valid.per_query.items()})
        info = {
            "model": name, "seed": seed, "params": p, "split": split_kind,
            "dataset": dataset, "test": {k: float(v) for k, v in test.mean().items()},
            "valid": {k: float(v) for k, v in valid.mean().items()}, "fit_info": _plain(fitted),
            "wall_seconds": wall, "torch_threads": torch.get_num_threads(), "machine": platform.platform(),
        }
        stem.with_suffix(".json").write_text(json.dumps(info, indent=1))
        fi = fitted
        print(f"{name} seed {seed}: valid NDCG@10 {info['valid']['ndcg@10']:.4f} test {info['test']['ndcg@10']:.4f} "
              f"best epoch {fi.get('best_epoch')} of {fi.get('epochs_run')}, {fi.get('seconds_to_best_epoch', 0):.0f} s to best, "
              f"{wall:.0f} s in all")


def _plain(info: dict | None) -> dict:
    return {k: v for k, v in (info or {}).items() if k != "history"}


def load_runs(out: Path, model: str, more: list[Path] | None = None) -> dict[int, tuple[dict, dict]]:
    """``{seed: (info json, per-user test metrics)}`` of what ``fit`` stored for ``model`` under ``out``,
    then under each of ``more`` for the seeds not found yet."""
    runs: dict[int, tuple[dict, dict]] = {}
    for folder in [out, *(more or [])]:
        for js in sorted(Path(folder).glob(f"{model}-seed*.json")):
            info = json.loads(js.read_text())
            if info["seed"] not in runs:
                runs[info["seed"]] = (info, dict(np.load(js.with_suffix(".npz"), allow_pickle=False)))
    return runs


def compare(a: str, b: str, out: Path, b_out: Path | None = None, only: list[int] | None = None, on: str = "test",
            users: str = "all", a_more: list[Path] | None = None, b_more: list[Path] | None = None) -> None:
    """Leaderboard and paired test of ``a`` (runs under ``out``) against ``b`` (under ``b_out``, default ``out``),
    over the seeds both have (of ``only``, when given); the ratio and the test are on ``on`` ("test" or
    "valid", for a decision that must not look at test).  ``users``: "cold" (runs fitted with
    ``--cold-users``: each seed's held-out users, pooled over the seeds), "warm" (the others) or "all"."""
    from recfuse.evaluate.significance import paired_test

    def pick(npz: dict, key: str, pre: str = "") -> np.ndarray:
        """A per-query array of a run, restricted to the users asked for."""
        v = npz[f"{pre}{key}"]
        if users == "all":
            return v
        if f"{pre}cold" not in npz:
            raise SystemExit(f"--users {users}: these runs were not fitted with --cold-users")
        c = npz[f"{pre}cold"]
        return v[c] if users == "cold" else v[~c]

    ra, rb = load_runs(out, a, a_more), load_runs(b_out or out, b, b_more)
    seeds = sorted(set(ra) & set(rb) & (set(only) if only else set(ra)))
    if not seeds:
        raise SystemExit(f"no seed that both {a} ({out}) and {b} ({b_out or out}) have")
    info = ra[seeds[0]][0]
    where = "" if b_out is None else f"; {b} from {b_out}"
    where += "".join(f"; more {m} seeds from {', '.join(map(str, d))}" for m, d in ((a, a_more), (b, b_more)) if d)
    kind = {"loo": "leave-one-out", "loo-valid5": "leave-one-out, five valid events per user",
            "temporal-events": "global temporal cut, event by event"}[info.get("split", "loo")]
    head = (f"{info.get('dataset', 'ml-100k')} {kind}, full ranking, history masked; seeds {seeds}; "
            f"machine {info['machine']}{where}")
    lines = [head, ""]
    lines.append("| model | NDCG@10 mean ± std | per seed | HR@10 | valid NDCG@10 | best epochs | s to best epoch (median) | params |")
    lines.append("|---|---|---|---|---|---|---|---|")
    # The same model name from two folders (a switch against the default): label the rows by folder.
    la, lb = (a, b) if a != b or b_out is None else (f"{a} ({out.name})", f"{b} ({b_out.name})")
    for m, runs in ((la, ra), (lb, rb)):
        if users == "all":
            t = [runs[s][0]["test"]["ndcg@10"] for s in seeds]
            h = [runs[s][0]["test"]["hit@10"] for s in seeds]
            v = [runs[s][0]["valid"]["ndcg@10"] for s in seeds]
        else:
            t, h, v = ([float(np.mean(pick(runs[s][1], k, pre))) for s in seeds]
                       for k, pre in (("ndcg@10", ""), ("hit@10", ""), ("ndcg@10", "valid_")))
        ep = [runs[s][0]["fit_info"].get("best_epoch") for s in seeds]
        sb = [runs[s][0]["fit_info"].get("seconds_to_best_epoch", float("nan")) for s in seeds]
        lines.append(f"| {m} | {np.mean(t):.4f} ± {np.std(t, ddof=1) if len(t) > 1 else 0:.4f} | "
                     f"{', '.join(f'{x:.4f}' for x in t)} | {np.mean(h):.4f} | {np.mean(v):.4f} | {ep} | "
                     f"{np.median(sb):.0f} | {runs[seeds[0]][0]['params']} |")
    pre = "valid_" if on == "valid" else ""
    if users == "all":
        per = {m: np.mean([runs[s][1][f"{pre}ndcg@10"] for s in seeds], axis=0) for m, runs in ((la, ra), (lb, rb))}
        user = ra[seeds[0]][1][f"{pre}user"]
    else:  # each seed holds out other users: their queries side by side
        per = {m: np.concatenate([pick(runs[s][1], "ndcg@10", pre) for s in seeds]) for m, runs in ((la, ra), (lb, rb))}
        user = np.concatenate([pick(ra[s][1], "user", pre) for s in seeds])
    ratio = float(np.mean(per[la]) / np.mean(per[lb]))  # over queries
    n_queries = len(user)
    if len(np.unique(user)) < len(user):  # several queries per user (temporal-events): test the users' means
        _, idx = np.unique(user, return_inverse=True)
        per = {m: np.bincount(idx, v) / np.bincount(idx) for m, v in per.items()}
    t = paired_test(per[la], per[lb])
    over = f"{t['n']} users" + (f" (means of their {n_queries} queries)" if t["n"] < n_queries else "")
    who = "" if users == "all" else f" ({users} users only)"
    lines += ["", (f"{on}{who}: {la} / {lb} = {ratio:.4f} (NDCG@10, mean over seeds); paired Wilcoxon over {over} "
                   f"p = {t['wilcoxon_p']:.3g}, paired t-test p = {t['ttest_p']:.3g}")]
    text = "\n".join(lines)
    print(text)
    tag = (f"_seeds{seeds[0]}-{seeds[-1]}" if only else "") + ("_valid" if on == "valid" else "")
    tag += "" if users == "all" else f"_{users}"
    tag += "_pooled" if a_more or b_more else ""
    (out / f"compare_{a}_vs_{b}{tag}.md").write_text(text + "\n")


def _seed_list(spec: str | None) -> list[int] | None:
    """``"5-9"`` -> ``[5, 6, 7, 8, 9]``; ``"0,2"`` -> ``[0, 2]``; ``None`` -> ``None``."""
    if not spec:
        return None
    try:
        if "-" in spec:
            lo, hi = (int(x) for x in spec.split("-", 1))
            return list(range(lo, hi + 1))
        return [int(x) for x in spec.split(",")]
    except ValueError:
        raise SystemExit(f"--seeds: expected A-B or A,B,..., got {spec!r}") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit", help="fit one model with one seed and store its per-user test metrics")
    f.add_argument("model")
    f.add_argument("seed", type=int)
    f.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE")
    f.add_argument("--dataset", default="ml-100k")
    f.add_argument("--out", type=Path, required=True)
    f.add_argument("--split", choices=SPLITS, default="loo",
                   help="leave-one-out, or the global temporal cut evaluated event by event")
    f.add_argument("--cold-users", type=int, default=None, metavar="FOLD",
                   help="hold fold FOLD (0-4) of 5 of the users out of training; they are asked as unknown users")
    f.add_argument("--fold-in", default="", metavar="S,S,...",
                   help="fusion with per-user vectors: also score with the unknown users folded in, S steps each")
    c = sub.add_parser("compare", help="leaderboard and paired test of two models over their common seeds")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--out", type=Path, required=True, help="folder of a's runs (and b's, without --b-out)")
    c.add_argument("--b-out", type=Path, default=None, help="folder of b's runs, when it is another one")
    c.add_argument("--seeds", default=None, metavar="A-B|A,B,...", help="only these seeds (default: all both have)")
    c.add_argument("--on", choices=("test", "valid"), default="test", help="the set the ratio and the paired test are on")
    c.add_argument("--a-more", type=Path, action="append", default=[], metavar="DIR",
                   help="another folder of a's runs, for the seeds --out lacks (repeatable)")
    c.add_argument("--b-more", type=Path, action="append", default=[], metavar="DIR",
                   help="another folder of b's runs, for the seeds its folder lacks (repeatable)")
    c.add_argument("--users", choices=("all", "cold", "warm"), default="all",
                   help="runs fitted with --cold-users: only the held-out (cold) users, pooled over seeds, or the others")
    args = ap.parse_args()
    if args.cmd == "fit":
        try:
            steps = [int(x) for x in args.fold_in.split(",") if x]
        except ValueError:
            raise SystemExit(f"--fold-in: expected step counts like 10,30, got {args.fold_in!r}") from None
        fit(args.model, args.seed, args.set, args.dataset, args.out, args.split, args.cold_users, steps)
    else:
        compare(args.a, args.b, args.out, args.b_out, _seed_list(args.seeds), args.on, args.users, args.a_more, args.b_more)


if __name__ == "__main__":
    main()
