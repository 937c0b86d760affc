"""Fine-tuning on two images, with and without pseudo-labels of the data set's other images.

The same two-image fine-tunes as ``bench_generalisation.py`` (the shipped
``default`` model, ``fine_tune``'s defaults with the GUI's replay of the
default model's own images, one thread, the same training pairs and the same
evaluation images), once as they are and once with ``unlabelled=`` the
evaluation images: the starting model's confident pixels of those images
become extra targets, its uncertain pixels are ignored
(:mod:`napari_unet.core.pseudo_labels`).  That is the intended use: the
unlabelled images are those of the very data set a person wants segmented, so
here they are also the images scored.  Their truth is never read for
training, and validation holds only the two labelled images.

Usage::

    .venv/bin/python benchmarks/bench_pseudo_label.py --threads 1 --json out.json
    .venv/bin/python benchmarks/bench_pseudo_label.py --datasets stack --repeats 1 \\
        --set pseudo_low=0.05 pseudo_high=0.95
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_generalisation import DATASETS, _pairs, as_the_gui_would, data_for, score  # noqa: E402
from datasets import dsb2018, otsu_baseline  # noqa: E402

from napari_unet.core.checkpoint import load_model  # noqa: E402
from napari_unet.core.events import EpochEnd, Notice, run_to_completion  # noqa: E402
from napari_unet.core.inference import predict_proba  # noqa: E402
from napari_unet.core.replay import load_replay  # noqa: E402
from napari_unet.core.training import fine_tune  # noqa: E402

ARMS = ("two_images", "two_images_plus_pseudo")


def with_model(model):
    return lambda image: predict_proba(image, model, device="cpu") >= model.threshold


def fine_tuned(name, repeat, images, masks, unlabelled, settings, log) -> dict:
    """One fine-tune of the default model and its scores; ``unlabelled`` may be None."""
    notes: list[str] = []

    def on_event(event):
        if isinstance(event, EpochEnd):
            arm = " +pseudo" if unlabelled else ""
            log(f"  [{name} #{repeat}{arm}] {event.epoch_text} loss {event.train_loss:.4f} "
                f"val {event.val_dice:.4f} best {event.best_dice:.4f}")  # fmt: skip
        elif isinstance(event, Notice):
            notes.append(event.message)
            log(f"  notice: {event.message}")

    t0 = time.perf_counter()
    gen = fine_tune(
        load_model("default"),
        images,
        masks,
        device="cpu",
        seed=repeat,
        replay=load_replay("default"),
        unlabelled=unlabelled,
        **as_the_gui_would(name, settings),
    )
    result = run_to_completion(gen, on_event)
    seconds = time.perf_counter() - t0
    run = result.model.history[-1]
    return {
        "fine_tune_seconds": round(seconds, 1),
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "stop": result.stop_message,
        "pseudo_labels": run.get("pseudo_labels"),
        "notices": notes,
        "model": result.model,
    }


def run(name: str, repeat: int, dsb, settings: dict, log, baselines: dict) -> dict:
    images, masks, test = data_for(name, repeat, dsb)
    unlabelled = [image for image, _, _ in test]
    out: dict = {"train_images": [list(np.shape(i)) for i in images], "n_eval": len(test)}
    for arm in ARMS:
        fit = fine_tuned(
            name, repeat, images, masks, unlabelled if "pseudo" in arm else None, settings, log
        )
        fit["scores"] = score(test, with_model(fit.pop("model")))
        out[arm] = fit
    # The stack differs per repeat; the DSB evaluation images do not.
    key = (name, repeat if name == "stack" else 0)
    if key not in baselines:
        baselines[key] = {
            "default": score(test, with_model(load_model("default"))),
            "otsu": score(test, otsu_baseline),
        }
    out.update(baselines[key])
    return out


def summarise(runs: dict) -> dict:
    table = {}
    for name, reps in runs.items():
        row: dict = {}
        for arm in ARMS:
            for metric in ("dice", "f1"):
                values = [r[arm]["scores"][metric] for r in reps]
                row[f"{arm}_{metric}"] = round(float(np.mean(values)), 4)
            row[f"{arm}_seconds"] = round(
                float(np.mean([r[arm]["fine_tune_seconds"] for r in reps])), 1
            )
        for method in ("default", "otsu"):
            row[f"{method}_dice"] = round(float(np.mean([r[method]["dice"] for r in reps])), 4)
        row["pseudo_beats_two_images_every_repeat"] = all(
            r[ARMS[1]]["scores"]["dice"] > r[ARMS[0]]["scores"]["dice"] for r in reps
        )
        table[name] = row
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--repeats", type=int, default=2, help="training pairs per data set")
    parser.add_argument("--first-repeat", type=int, default=0, help="index of the first pair")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="fine_tune settings")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = _pairs(args.set)

    def log(text: str) -> None:
        print(text, flush=True)

    dsb = dsb2018()
    results: dict = {
        "args": vars(args),
        "command": " ".join(sys.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or ''}",
        "torch_threads": torch.get_num_threads(),
        "load_average_start": [round(v, 2) for v in os.getloadavg()],
        "runs": {},
    }
    started = time.perf_counter()
    baselines: dict = {}
    # Repeat-major: a run cut short still has every data set's first pair.
    for repeat in range(args.first_repeat, args.first_repeat + args.repeats):
        for name in args.datasets:
            out = run(name, repeat, dsb, settings, log, baselines)
            results["runs"].setdefault(name, []).append(out)
            log(json.dumps({name: {k: v for k, v in out.items() if k != "train_images"}}))
            results["summary"] = summarise(results["runs"])
            results["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
            results["total_seconds"] = round(time.perf_counter() - started, 1)
            if args.json:
                with open(args.json, "w") as handle:
                    json.dump(results, handle, indent=2, default=str)
    log(json.dumps(results["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
