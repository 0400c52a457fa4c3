"""Run RecBole 1.2.1 itself on ml-100k leave-one-out: Pop, Pop with the count fixed, ItemKNN.

This checks recfuse's leave-one-out protocol against RecBole's reference
implementation.  It does NOT import recfuse: it runs inside a separate
virtualenv that holds RecBole (never install RecBole into recfuse's venv).

Create the environment (CPU torch only).  RecBole 1.2.1 needs numpy 1.x and
pandas < 3, and setuptools < 81 (``recbole.quick_start`` imports ray 2.6.3,
which imports ``pkg_resources``); nothing in site-packages is patched:

    python3 -m venv /tmp/rbenv
    /tmp/rbenv/bin/pip install torch==2.13.0          # the CPU wheel here
    /tmp/rbenv/bin/pip install recbole==1.2.1
    /tmp/rbenv/bin/pip install "numpy<2" "pandas<2.3" "scipy<1.14" "setuptools<81"

(torch >= 2.6 refuses RecBole's checkpoint in ``torch.load``'s new
``weights_only=True`` default; this script passes ``weights_only=False`` for
the checkpoints it writes itself, see ``_allow_recbole_checkpoints``.)

Run (the atomic files ml-100k.inter/.item/.user live in DATA_ROOT/ml-100k/):

    /tmp/rbenv/bin/python benchmarks/recbole_check.py \
        --data-path /work/shared/data --out /tmp/recbole_targets.csv

then compare RecBole's per-user valid/test targets with recfuse's split,
from recfuse's own venv:

    .venv/bin/python benchmarks/compare_targets.py /tmp/recbole_targets.csv

Protocol (as in recfuse's leave-one-out): ``eval_args: {split: {LS:
valid_and_test}, order: TO, group_by: user, mode: full}``, metrics NDCG, Hit,
MRR @10, ``valid_metric: NDCG@10``, the rest RecBole's ml-100k defaults
(seed 2020, train_batch_size 2048, one uniform negative per positive for
POINTWISE models).

Three models:

* ``Pop``: RecBole's own.  Its ``calculate_loss`` does
  ``item_cnt[item, :] = item_cnt[item, :] + 1``: with repeated indices in a
  batch that adds 1 once per *batch*, and the POINTWISE batch also holds the
  sampled negatives (``label == 0``), so the "popularity" is the number of
  training batches an item shows up in.
* ``PopFixed``: the same model, counting each positive training event
  (``label == 1``) once (``index_add_``).  This is true popularity.
* ``ItemKNN``: RecBole's own, ``k=100``, ``shrink=0.0`` (its defaults).

Pop and ItemKNN go through RecBole's ``run_recbole``; Pop and PopFixed are
also run step by step to read their counts.  The script then re-ranks the two
Pop models' counts with ties broken by item id (stable sort) rather than
``torch.topk``, runs RecBole's Pop over ``--pop-seeds`` seeds (the count
depends on the shuffle and the negatives), writes RecBole's per-user valid and
test items to ``--out``, and compares them with a stable sort on the exact raw
timestamps.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
import tempfile

import torch
from recbole.model.general_recommender.pop import Pop


def _allow_recbole_checkpoints() -> None:
    """RecBole 1.2.1's ``trainer.evaluate(load_best_model=True)`` calls
    ``torch.load(file)``; since torch 2.6 that defaults to ``weights_only=True``
    and refuses RecBole's checkpoint (it pickles the config).  The checkpoints
    are the ones this script just wrote in its own temp dir, so load them with
    ``weights_only=False``.  (Done here, site-packages is left untouched.)"""
    orig = torch.load

    def load(*a, **kw):
        kw.setdefault("weights_only", False)
        return orig(*a, **kw)

    torch.load = load


class PopFixed(Pop):
    """RecBole's Pop, but each positive training event adds exactly 1."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.LABEL = config["LABEL_FIELD"]  # GeneralRecommender does not set it

    def calculate_loss(self, interaction):
        item = interaction[self.ITEM_ID]
        label = interaction[self.LABEL]  # 1.0 for the positive rows, 0.0 for the sampled negatives
        pos = item[label > 0.5]
        self.item_cnt.index_add_(
            0, pos, torch.ones(len(pos), 1, dtype=self.item_cnt.dtype, device=self.item_cnt.device)
        )
        self.max_cnt = torch.max(self.item_cnt, dim=0)[0]
        return torch.nn.Parameter(torch.zeros(1)).to(self.device)


def base_config(args, workdir, seed=None):
    d = {
        "data_path": args.data_path,
        "checkpoint_dir": os.path.join(workdir, "saved"),
        "use_gpu": False,
        "show_progress": False,
        "state": "WARNING",
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "order": "TO",
            "group_by": "user",
            "mode": "full",
        },
        "metrics": ["NDCG", "Hit", "MRR"],
        "topk": [10],
        "valid_metric": "NDCG@10",
    }
    if seed is not None:
        d["seed"] = seed
    return d


def run_official(model, args, workdir, seed=None, **params):
    """RecBole's own ``run_recbole`` (the quick-start path); returns the test result."""
    from recbole.quick_start import run_recbole

    cfg = base_config(args, workdir, seed)
    cfg.update(params)
    out = run_recbole(model=model, dataset=args.dataset, config_dict=cfg, saved=True)
    logging.getLogger().setLevel(logging.WARNING)
    return dict(out["test_result"])


def run_pipeline(model_class, args, workdir):
    """``run_recbole``'s steps, spelled out, for a model class of ours.

    Same seeding as ``run_recbole`` (seed before the dataset, again before the
    model); the FLOPs count it logs is skipped (no randomness in it).  Returns
    the test result, the model and the data splits."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_trainer, init_logger, init_seed

    config = Config(model=model_class, dataset=args.dataset, config_dict=base_config(args, workdir))
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logging.getLogger().setLevel(logging.WARNING)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    net = model_class(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    result = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    return dict(result), net, (dataset, train_data, valid_data, test_data)


def count_note(net):
    cnt = net.item_cnt.squeeze(-1)
    return f"max count {int(cnt.max())}, {int((cnt == cnt.max()).sum())} item(s) tied at it"


def pop_ndcg_stable_ties(net, test_data, k=10):
    """Test NDCG@k (and the number of users whose top-k cut-off falls inside a
    tie) of a Pop model's own counts, ranked with ties broken by item id
    (lowest first, a stable sort) instead of ``torch.topk``'s arbitrary order;
    same masking as RecBole (padding item and train+valid history out)."""
    import numpy as np

    cnt = net.item_cnt.squeeze(-1).double().numpy()
    feat = test_data._dataset.inter_feat
    uid, iid = test_data._dataset.uid_field, test_data._dataset.iid_field
    total, tied = 0.0, 0
    for u, t in zip(feat[uid].numpy(), feat[iid].numpy()):
        s = cnt.copy()
        s[0] = -np.inf
        s[test_data.uid2history_item[u].numpy()] = -np.inf
        order = np.argsort(-s, kind="stable")
        top = order[:k]
        tied += int(s[order[k - 1]] == s[order[k]])  # the cut-off falls inside a tie
        hit = np.flatnonzero(top == t)
        total += 1.0 / np.log2(hit[0] + 2) if len(hit) else 0.0
    return total / len(feat), tied


def exact_time_targets(args):
    """Per user (valid, test) from the raw atomic file, sorted by the exact
    timestamp (stable, ties in file order) -- what recfuse does."""
    path = os.path.join(args.data_path, args.dataset, f"{args.dataset}.inter")
    with open(path) as fh:
        header = fh.readline().rstrip("\n").split("\t")
        cols = [h.split(":")[0] for h in header]
        iu, ii, it = cols.index("user_id"), cols.index("item_id"), cols.index("timestamp")
        rows = [line.rstrip("\n").split("\t") for line in fh if line.strip()]
    order = sorted(range(len(rows)), key=lambda r: float(rows[r][it]))  # sorted() is stable
    seq = {}
    for r in order:
        seq.setdefault(rows[r][iu], []).append(rows[r][ii])
    n_distinct = len({rows[r][it] for r in order})
    return {u: (s[-2], s[-1]) for u, s in seq.items() if len(s) >= 3}, n_distinct


def targets(splits):
    """Per user (external id): train size, valid item, test item (external ids)."""
    dataset, train_data, valid_data, test_data = splits
    uid, iid = dataset.uid_field, dataset.iid_field
    out = {}
    for name, dl in (("valid", valid_data), ("test", test_data)):
        feat = dl._dataset.inter_feat
        users = dataset.id2token(uid, feat[uid].numpy())
        items = dataset.id2token(iid, feat[iid].numpy())
        for u, i in zip(users, items):
            if name in out.setdefault(u, {}):
                raise RuntimeError(f"user {u} has more than one {name} target")
            out[u][name] = i
    train_feat = train_data._dataset.inter_feat
    for u in dataset.id2token(uid, train_feat[uid].numpy()):
        d = out.setdefault(u, {})
        d["n_train"] = d.get("n_train", 0) + 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data-path",
        default="/work/shared/data",
        type=os.path.abspath,
        help="folder holding <dataset>/<dataset>.inter etc.",
    )
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--out", required=True, help="CSV for RecBole's per-user valid/test targets (external ids)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pop-seeds", type=int, default=20, help="also run RecBole's Pop with seeds 0..N-1 (0: skip)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    _allow_recbole_checkpoints()

    import recbole

    print(f"recbole {recbole.__version__}  torch {torch.__version__}  python {sys.version.split()[0]}")
    try:
        import numpy
        import pandas
        import scipy

        print(f"numpy {numpy.__version__}  pandas {pandas.__version__}  scipy {scipy.__version__}")
    except ImportError:
        pass
    print(f"dataset {args.dataset} from {args.data_path}; LS valid_and_test, order TO, group_by user, full ranking")

    fmt = "{:34s} {:12.4f} {:11.4f} {:11.4f}  {}"
    lines = []
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)  # RecBole writes log/ and log_tensorboard/ into the cwd
        try:
            pop = run_official("Pop", args, workdir)
            knn = run_official("ItemKNN", args, workdir, k=100, shrink=0.0)
            pop_again, pop_net, _ = run_pipeline(Pop, args, workdir)
            fixed, fixed_net, splits = run_pipeline(PopFixed, args, workdir)
            pop_stable = pop_ndcg_stable_ties(pop_net, splits[3])
            fixed_stable = pop_ndcg_stable_ties(fixed_net, splits[3])
            seeds = list(range(args.pop_seeds))
            spread = [run_official("Pop", args, workdir, seed=s)["ndcg@10"] for s in seeds]
        finally:
            os.chdir(cwd)
    lines.append(("Pop (run_recbole, seed 2020)", pop, ""))
    lines.append(("Pop (spelled out, seed 2020)", pop_again, count_note(pop_net)))
    lines.append(("PopFixed (1 per positive event)", fixed, count_note(fixed_net)))
    lines.append(("ItemKNN k=100 shrink=0 (run_recbole)", knn, ""))
    print()
    print(f"{'model':34s} {'test NDCG@10':>12s} {'test Hit@10':>11s} {'test MRR@10':>11s}  notes")
    for name, res, note in lines:
        print(fmt.format(name, res["ndcg@10"], res["hit@10"], res["mrr@10"], note))
    print()
    print("Pop test NDCG@10 re-ranked from the model's own counts with ties broken by item id (stable sort)")
    print(
        f"instead of torch.topk: Pop {pop_stable[0]:.4f} ({pop_stable[1]} users with a tie at the top-10 cut-off), "
        f"PopFixed {fixed_stable[0]:.4f} ({fixed_stable[1]} users with a tie at the cut-off)"
    )
    if spread:
        import statistics

        print()
        print(f"RecBole Pop test NDCG@10 over seeds {seeds[0]}..{seeds[-1]} (shuffle + negative sampling change):")
        print("  " + " ".join(f"{v:.4f}" for v in spread))
        print(f"  median {statistics.median(spread):.4f}, min {min(spread):.4f}, max {max(spread):.4f}")

    per_user = targets(splits)
    with open(args.out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user", "n_train", "valid_item", "test_item"])
        for u in sorted(per_user, key=lambda x: int(x) if x.isdigit() else x):
            d = per_user[u]
            w.writerow([u, d.get("n_train", 0), d.get("valid", ""), d.get("test", "")])
    n_test = sum(1 for d in per_user.values() if "test" in d)
    n_valid = sum(1 for d in per_user.values() if "valid" in d)
    print()
    print(
        f"RecBole targets: {len(per_user)} users, {n_valid} with a valid item, {n_test} with a test item -> {args.out}"
    )
    exact, n_distinct = exact_time_targets(args)
    same_v = sum(1 for u, (v, t) in exact.items() if per_user.get(u, {}).get("valid") == v)
    same_t = sum(1 for u, (v, t) in exact.items() if per_user.get(u, {}).get("test") == t)
    print(
        f"vs a stable sort on the exact raw timestamps: same valid item {same_v}/{len(exact)}, "
        f"same test item {same_t}/{len(exact)}"
    )
    ts = splits[0].inter_feat[splits[0].time_field]
    print(
        f"(RecBole holds '{splits[0].time_field}' as {ts.dtype}, min-max normalised when normalize_all is on: "
        f"{len(set(ts.tolist()))} distinct values against {n_distinct} distinct raw timestamps; "
        "ties then keep file order)"
    )


if __name__ == "__main__":
    main()
