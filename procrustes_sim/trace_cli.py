"""The ``trace generate``, ``trace import`` and ``trace inspect`` subcommands.

:func:`add_subcommands` adds their parsers to the ``trace`` group of
:mod:`procrustes_sim.cli`, and :func:`run` executes them. Bad input raises
InputError, which the command line turns into one line on stderr and exit
code 2.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from procrustes_sim.errors import InputError

COMMANDS = ("generate", "import", "inspect")


def add_subcommands(trace_commands, add_common: Callable[[argparse.ArgumentParser], None],
                    positive_int: Callable[[str], int],
                    fraction: Callable[[str], float]) -> None:
    """Add the generate, import and inspect parsers to the ``trace`` subparsers."""
    generate = trace_commands.add_parser(
        "generate", help="train a network with Dropback on the digits and record a real trace")
    generate.add_argument("--workload", default="vgg_s",
                          help="bundled workload name or topology CSV of a plain chain of "
                               "layers ending in 10 outputs (default: %(default)s)")
    generate.add_argument("--selection", default="quantile",
                          choices=("quantile", "topk", "dense"),
                          help="tracked-weight selection: streaming quantile estimator, exact "
                               "top-k, or dense training (default: %(default)s)")
    generate.add_argument("--density", type=fraction, default=0.1,
                          help="fraction k / total of weights to track (default: %(default)s)")
    generate.add_argument("--iterations", type=positive_int, default=300,
                          help="training iterations (default: %(default)s)")
    generate.add_argument("--batch", type=positive_int, default=16,
                          help="minibatch size N (default: %(default)s)")
    generate.add_argument("--snapshots", type=positive_int, default=6,
                          help="record this many iterations spread evenly from the first to "
                               "the last (default: %(default)s)")
    generate.add_argument("--record", default=None,
                          help="comma-separated iterations to record instead of --snapshots, "
                               "e.g. 0,100,299")
    generate.add_argument("--lr", type=float, default=0.02,
                          help="SGD learning rate (default: %(default)s)")
    generate.add_argument("--momentum", type=float, default=0.9,
                          help="SGD momentum (default: %(default)s)")
    generate.add_argument("--decay", type=float, default=0.95,
                          help="factor applied to the initial weights per iteration "
                               "(default: %(default)s)")
    generate.add_argument("--decay-epsilon", type=float, default=1e-3,
                          help="the initial weights become exactly 0 once decay**iteration "
                               "falls to this or below (default: %(default)s)")
    generate.add_argument("--lam", type=float, default=1e-6,
                          help="step size of the quantile estimator (default: %(default)s)")
    generate.add_argument("--threshold", type=float, default=1e-2,
                          help="initial threshold of the quantile estimator "
                               "(default: %(default)s)")
    generate.add_argument("--seed", type=int, default=0,
                          help="seed of the weights, data split and batch order "
                               "(default: %(default)s)")
    generate.add_argument("--metrics", default=None,
                          help="also write the per-iteration log and held-out accuracy to "
                               "this JSON file")
    generate.add_argument("--out", required=True, help="trace file to write (.pstrace)")
    add_common(generate)

    importer = trace_commands.add_parser(
        "import", help="convert weight masks saved by other tools into a trace "
                       "(X and dY become dense)")
    importer.add_argument("source", help="folder of mask files, or an .npz file for "
                                         "--format pytorch")
    importer.add_argument("--format", required=True, choices=("timeloop", "pytorch"),
                          help="timeloop: the Procrustes authors' <model>_<layer>.npy boolean "
                               "masks in (R, S, C, K) or (C, K) order; pytorch: .npy/.npz "
                               "weights or masks in (K, C, R, S) order, zero = pruned")
    importer.add_argument("--workload", required=True,
                          help="bundled workload name or topology CSV that the masks belong to")
    importer.add_argument("--batch", type=positive_int, default=16,
                          help="minibatch size N of the dense X and dY masks "
                               "(default: %(default)s)")
    importer.add_argument("--model", default=None,
                          help="timeloop: file-name prefix <model> (default: inferred from "
                               "the first layer's file)")
    importer.add_argument("--iterations", default=None,
                          help="timeloop: comma-separated iteration numbers of the samples "
                               "(default: 0, 1, ...)")
    importer.add_argument("--mapping", default=None,
                          help="pytorch: JSON or YAML file of {array name: layer name} "
                               "(default: arrays named <layer> or <layer>.weight, else the "
                               "2-D and 4-D arrays in file order)")
    importer.add_argument("--iteration", type=int, default=0,
                          help="pytorch: iteration number of the snapshot (default: 0)")
    importer.add_argument("--out", required=True, help="trace file to write (.pstrace)")
    add_common(importer)

    inspect = trace_commands.add_parser(
        "inspect", help="print per-layer densities and non-zeros per channel of a trace")
    inspect.add_argument("trace", help="trace file (.pstrace)")
    inspect.add_argument("--plot", default=None,
                         help="also save density over iterations to this .png/.pdf/.svg file")
    add_common(inspect)


def run(args: argparse.Namespace) -> int:
    """Execute one of :data:`COMMANDS`; return the exit code."""
    handlers = {"generate": _generate, "import": _import, "inspect": _inspect}
    return handlers[args.trace_command](args)


def _generate(args: argparse.Namespace) -> int:
    import json

    from procrustes_sim.training import TrainConfig, spread_iterations, train
    from procrustes_sim.workload import load_workload

    out = Path(args.out)
    if not out.parent.is_dir():
        raise InputError(f"--out {str(out)!r}: directory {str(out.parent)!r} does not exist; "
                         "create it first")
    if args.metrics is not None and not Path(args.metrics).parent.is_dir():
        raise InputError(f"--metrics {args.metrics!r}: its directory does not exist; "
                         "create it first")
    if args.record is not None:
        record = _parse_iterations(args.record)
    else:
        record = spread_iterations(args.iterations, args.snapshots)
    workload = load_workload(args.workload)
    config = TrainConfig(iterations=args.iterations, batch=args.batch, density=args.density,
                         selection=args.selection, learning_rate=args.lr,
                         momentum=args.momentum, decay=args.decay,
                         decay_epsilon=args.decay_epsilon, quantile_lambda=args.lam,
                         initial_threshold=args.threshold, seed=args.seed, record=record)
    # NOTE: the recorded command comes from sys.argv, so the same trace bytes
    # need the same words, --out and --metrics included; main(argv) called from
    # Python records the host process's argv instead.
    command = "procrustes-sim " + " ".join(shlex.quote(word) for word in sys.argv[1:])
    result = train(workload, config, out=out, provenance={"command": command})
    if args.metrics is not None:
        metrics = {"workload": workload.name, "selection": config.selection,
                   "held_out_accuracy": result.test_accuracy, "k": result.k,
                   "total_weights": result.total_weights,
                   "iterations_per_second": result.iterations_per_second,
                   "tracked_drift_of_k": result.tracked_drift(), "history": result.history}
        Path(args.metrics).write_text(json.dumps(metrics, indent=1) + "\n")
    print(f"held-out accuracy {result.test_accuracy:.4f} after {config.iterations} iterations")
    print(f"wrote {result.trace_path}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from procrustes_sim.importers import import_timeloop_masks, import_weight_arrays
    from procrustes_sim.workload import load_workload

    out = Path(args.out)
    if not out.parent.is_dir():
        raise InputError(f"--out {str(out)!r}: directory {str(out.parent)!r} does not exist; "
                         "create it first")
    workload = load_workload(args.workload)
    if args.format == "timeloop":
        iterations = None
        if args.iterations is not None:
            iterations = list(_parse_iterations(args.iterations, "--iterations", keep_order=True))
        path = import_timeloop_masks(args.source, workload, args.batch, out, model=args.model,
                                     iterations=iterations)
    else:
        path = import_weight_arrays(args.source, workload, args.batch, out,
                                    mapping=args.mapping, iteration=args.iteration)
    print(f"wrote {path} (X and dY masks are dense: the source holds weight masks only)")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from procrustes_sim.inspect_trace import (check_plot_path, format_table, inspect_trace,
                                              plot_densities)

    if args.plot is not None:
        # Checked before the table is printed, so a bad path prints nothing.
        check_plot_path(args.plot)
    trace, stats = inspect_trace(args.trace)
    print(format_table(trace, stats))
    if args.plot is not None:
        print(f"wrote {plot_densities(trace, stats, args.plot)}")
    return 0


def _parse_iterations(text: str, option: str = "--record",
                      keep_order: bool = False) -> tuple[int, ...]:
    values = []
    for part in text.split(","):
        try:
            value = int(part)
        except ValueError:
            raise InputError(f"{option} {text!r}: {part!r} is not an integer; give "
                             "comma-separated iterations such as 0,100,299") from None
        values.append(value)
    if keep_order:
        return tuple(values)
    return tuple(sorted(set(values)))
