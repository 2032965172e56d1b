"""The ``parfit`` command."""

import functools
import logging
import math
import sys
import time
from pathlib import Path

import click
import numpy as np

__all__ = ["main"]

DEMO_FILES = ("maps.zarr", "maps.png", "summary.txt")


@click.group()
@click.version_option(package_name="parfit")
@click.option("--debug", is_flag=True, help="Show full tracebacks and debug logging.")
@click.pass_context
def main(ctx, debug):
    """parfit: fit a model to every pixel of a data cube, in parallel on dask."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # A LocalCluster of `parfit run` would log its start and stop at INFO level;
    # dask.distributed reads this when it is first imported.
    import dask

    dask.config.set({"logging.distributed": "info" if debug else "warning"})


# --- error handling ---------------------------------------------------------------------

#: Exit codes of the commands.
EXIT_OK, EXIT_ERROR, EXIT_INVALID, EXIT_FAILED_FITS = 0, 1, 2, 3


def _guarded(func):
    """Print parfit's errors without a traceback (unless --debug) and exit with a code.

    Invalid configs exit with 2, other errors with 1, an interrupt with 130.
    """
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        import traceback

        from .errors import ConfigError, ParfitError

        debug = (click.get_current_context().find_root().obj or {}).get("debug", False)
        try:
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException):
            raise
        except ConfigError as exc:
            if debug:
                traceback.print_exc()
            click.echo(str(exc), err=True)
            sys.exit(EXIT_INVALID)
        except KeyboardInterrupt as exc:
            if debug:
                traceback.print_exc()
            what = "terminated" if isinstance(exc, Terminated) else "interrupted"
            click.echo(
                f"{what}; the blocks already fitted are kept in the output store: run "
                f"again with output.resume: true (or --resume) to go on",
                err=True,
            )
            sys.exit(143 if isinstance(exc, Terminated) else 130)
        except (ParfitError, OSError, ValueError, TypeError) as exc:
            if debug:
                traceback.print_exc()
            click.echo(f"error: {exc}", err=True)
            if not debug:
                click.echo("(run with parfit --debug ... for the traceback)", err=True)
            sys.exit(EXIT_ERROR)
        except Exception as exc:  # noqa: BLE001 - never a bare traceback without --debug
            if debug:
                traceback.print_exc()
            click.echo(f"internal error: {type(exc).__name__}: {exc}", err=True)
            if not debug:
                click.echo(
                    "(this is a bug in parfit: please report it with the output of "
                    "parfit --debug ...)",
                    err=True,
                )
            sys.exit(EXIT_ERROR)

    return wrapper


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system's time limit), handled like Ctrl-C."""


def _raise_terminated(signum, frame):
    raise Terminated()


# --- config, validate, run, inspect --------------------------------------------------------


@main.command("config")
@click.option("--minimal", is_flag=True, help="Only the keys you must give.")
@click.option(
    "--joint",
    is_flag=True,
    help="A joint fit of several cubes: a datasets section in place of input and model.",
)
@click.option(
    "--select",
    is_flag=True,
    help="A per-pixel model selection: a select section of candidate models in place of model.",
)
@click.option(
    "--reference",
    is_flag=True,
    help="Print the reference page of every key (reStructuredText) instead.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)
@click.option("--force", is_flag=True, help="Replace an existing --output file.")
@_guarded
def config_cmd(minimal, joint, select, reference, output, force):
    """Write a commented config template (every option, its default and meaning).

    \b
    parfit config > fit.yaml           # every option
    parfit config --minimal > fit.yaml # the keys you must give
    parfit config --joint > fit.yaml   # several cubes fitted together
    parfit config --select > fit.yaml  # candidate models, the best per pixel
    """
    from parfit.config.docs import reference_rst, template

    if joint and select:
        raise click.UsageError(
            "--joint and --select exclude each other: a joint fit has no per-pixel model selection"
        )
    text = reference_rst() if reference else template(minimal=minimal, joint=joint, select=select)
    if output is None:
        click.echo(text, nl=False)
        return
    if output.exists() and not force:
        raise click.ClickException(f"{output} exists; pass --force to replace it")
    output.write_text(text)
    click.echo(f"wrote {output}", err=True)


@main.command()
@click.argument("config_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--no-input", is_flag=True, help="Check the file only; do not look at the input files."
)
@_guarded
def validate(config_file, no_input):
    """Check CONFIG_FILE: schema, units, files, and the input against it.

    Every problem is printed with its YAML path and line; the exit code is 0
    when the file is valid and 2 when it is not.
    """
    import math

    from parfit.config import build_model, load_config, open_input
    from parfit.config.schema import is_joint_config, is_selection_config

    cfg = load_config(config_file, deep=not no_input, check_files=not no_input)
    model = build_model(cfg)
    click.echo(f"{config_file}: valid")
    if is_joint_config(cfg):
        opened = None if no_input else open_input(cfg)
        first = None
        for name, entry in cfg.datasets.items():
            click.echo(f"  dataset {name}:")
            first = first or name
            _describe_input(entry.input, None if opened is None else opened[name], "    ")
            _describe_model(entry.model, model[name], "    ")
        n_fits = ""
        if opened is not None:
            shape, axes = opened[first]["shape"], opened[first]["fitting_axes"]
            n = math.prod(n for a, n in enumerate(shape) if a not in axes)
            n_fits = f": {n} fits of {sum(_n_samples(o) for o in opened.values())} samples"
        click.echo(
            f"  joint:  {len(cfg.datasets)} datasets fitted together, pixel by pixel{n_fits}"
        )
    elif is_selection_config(cfg):
        _describe_input(cfg.input, None if no_input else open_input(cfg), "  ")
        section = cfg.select
        threshold = f", threshold {section.threshold:g}" if section.threshold else ""
        click.echo(
            f"  select: {len(section.candidates)} candidate models, the best per pixel by "
            f"{section.criterion}{threshold}"
        )
        for k, (candidate, built) in enumerate(zip(section.candidates, model)):
            _describe_model(candidate, built, "    ", f"candidate {k}:")
    else:
        _describe_input(cfg.input, None if no_input else open_input(cfg), "  ")
        _describe_model(cfg.model, model, "  ")
    click.echo(f"  fitter: {cfg.fitter.name};  scheduler: {cfg.run.scheduler}")
    if not cfg.likelihood.is_default:
        click.echo(f"  likelihood: {_describe_likelihood(cfg.likelihood)}")
    if not cfg.strategy.is_default:
        click.echo(f"  strategy: {cfg.strategy.describe()}")
    click.echo(f"  output: {cfg.output.path}")
    from parfit.config.schema import resolve

    from .analysis import RUN_RECORD

    out = resolve(cfg, cfg.output.path)
    if (out / RUN_RECORD).exists() and not (cfg.output.overwrite or cfg.output.resume):
        click.echo(
            f"note: {out} holds an earlier run; `parfit run` will refuse it unless "
            f"output.overwrite or output.resume is set (or --overwrite / --resume)"
        )


def _describe_likelihood(section):
    """The ``likelihood:`` line of ``parfit validate``: what the run computes besides the fit."""
    parts = [f"statistic {section.statistic}"]
    if section.null:
        parts.append("TS against " + ", ".join(f"{k}={v:g}" for k, v in section.null.items()))
    if section.profile:
        parts.append(
            f"profiles of {', '.join(section.profile)} ({section.n_sigma:g}-sigma intervals, "
            f"{section.n_sigma_ul:g}-sigma upper limits)"
        )
    return "; ".join(parts)


def _n_samples(opened):
    import math

    return math.prod(opened["shape"][a] for a in opened["fitting_axes"])


def _describe_input(inp, opened, indent):
    """The ``input:`` line of ``parfit validate`` (``opened`` None: not opened)."""
    import math

    if opened is None:
        click.echo(f"{indent}input:  {inp.path} (not opened)")
        return
    shape, axes = opened["shape"], opened["fitting_axes"]
    n_fits = math.prod(n for a, n in enumerate(shape) if a not in axes)
    unit = opened["data_unit"] or getattr(opened["data"], "unit", None)
    click.echo(
        f"{indent}input:  {inp.path}, shape {shape}, fitting along axis "
        f"{', '.join(map(str, axes))}: {n_fits} fits of "
        f"{_n_samples(opened)} samples" + (f", data in {unit}" if unit else "")
    )


def _describe_model(section, model, indent, label="model: "):
    """The ``model:`` line of ``parfit validate`` (``label``: a candidate's)."""
    region = f", region {section.initial_region['path']}" if section.initial_region else ""
    click.echo(
        f"{indent}{label} {' + '.join(c.type for c in section.components)} "
        f"({model.n_params} parameters, initial: {section.initial}{region})"
    )


@main.command()
@click.argument("config_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--resume", is_flag=True, help="Same as output.resume: true.")
@click.option("--overwrite", is_flag=True, help="Same as output.overwrite: true.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@_guarded
def run(config_file, resume, overwrite, no_progress):
    """Run the analysis of CONFIG_FILE and write its output folder.

    The folder (output.path) receives maps.zarr (streamed, resumable),
    config.yaml, run.json and the diagnostics.  Exit code: 0 when done, 3
    when done but more fits failed than run.max_failed_fraction, 2 for an
    invalid config, 1 on error, 130 when interrupted (Ctrl-C) and 143 when
    terminated (SIGTERM); --resume then fits what is left.
    """
    import signal

    from parfit.config import load_config, validate_config

    from .analysis import Analysis

    if resume and overwrite:
        raise click.UsageError(
            "--resume and --overwrite exclude each other: resume continues "
            "the results in the output folder, overwrite replaces them"
        )
    signal.signal(signal.SIGTERM, _raise_terminated)
    cfg = load_config(config_file, deep=True)
    if resume or overwrite:
        data = cfg.model_dump(mode="json")
        data["output"].update(
            resume=resume or cfg.output.resume and not overwrite,
            overwrite=overwrite or cfg.output.overwrite and not resume,
        )
        cfg = validate_config(data, base_dir=config_file.resolve().parent, source=str(config_file))
    analysis = Analysis(cfg)
    if analysis.joint:
        what = ", ".join(f"{n} ({e.input.path})" for n, e in cfg.datasets.items()) + " jointly"
    elif analysis.select:
        what = f"{cfg.input.path} with {len(cfg.select.candidates)} candidate models"
    else:
        what = cfg.input.path
    click.echo(f"fitting {what} -> {analysis.output_path}", err=True)
    analysis.run(progress=False if no_progress else None)
    rec = analysis.record
    counts = ", ".join(f"{k}={v}" for k, v in rec["status_counts"].items())
    click.echo(f"{rec['n_fits']} fits in {rec['timings']['total_s']:.1f} s: {counts}")
    if rec.get("flag_counts"):
        click.echo("flags: " + ", ".join(f"{k}={v}" for k, v in rec["flag_counts"].items()))
    if cfg.likelihood.null and not analysis.select:
        click.echo(_ts_line(analysis.result, cfg.likelihood))
    if analysis.select:
        click.echo(_selection_line(rec["selection"]))
    elif rec.get("refit"):
        click.echo(_refit_line(analysis.result))
    click.echo(
        f"failed: {rec['n_failed']} of {rec['n_attempted']} attempted "
        f"({100 * rec['failed_fraction']:.2f} %, limit "
        f"{100 * rec['max_failed_fraction']:.2f} %)"
    )
    if analysis.select:
        stores = [c["store"] for c in rec["selection"]["candidates"]] + [rec["maps"]]
    else:
        stores = ["maps.zarr"]
    written = [*stores, *rec["exports"], "run.json", "config.yaml"]
    if analysis.diagnostics_path is not None:
        written.append(str(analysis.diagnostics_path))
    click.echo(f"wrote {analysis.output_path}: {', '.join(written)}")
    if rec["exit_status"] == "too_many_failures":
        click.echo(
            f"more fits failed than run.max_failed_fraction allows; see "
            f"`parfit inspect {analysis.output_path}`",
            err=True,
        )
        sys.exit(EXIT_FAILED_FITS)


def _selection_line(selection):
    """What ``parfit run`` says of a model selection: the pixels each candidate won."""
    won = ", ".join(
        f"candidate {k} ({c['model']}) {c['chosen']}" for k, c in enumerate(selection["candidates"])
    )
    return (
        f"model selection by {selection['criterion']}: {won}; no candidate succeeded "
        f"{selection['no_candidate']}"
    )


def _refit_line(result):
    """What ``parfit run`` says of the neighbour refits."""
    refits = np.asarray(result.refits)
    origin = np.asarray(result.origin)
    return (
        f"neighbour refits: {len(result.run.refit)} passes, "
        f"{int(np.count_nonzero(refits))} fits refitted, {int(np.count_nonzero(origin))} hold a "
        f"solution found from their neighbours"
    )


def _ts_line(result, section):
    """What ``parfit run`` says of the TS map, over the OK fits."""
    from .status import Status

    ts = np.asarray(result.ts)[np.asarray(result.status) == Status.OK]
    ts = ts[np.isfinite(ts)]
    held = ", ".join(f"{k}={v:g}" for k, v in section.null.items())
    if not ts.size:
        return f"TS against {held}: no OK fit with a finite TS"
    return (
        f"TS against {held} over {ts.size} OK fits: median {np.median(ts):.4g}, max "
        f"{ts.max():.4g}; TS > 9: {int((ts > 9).sum())}, TS > 25: {int((ts > 25).sum())}"
    )


def _parse_pixel(ctx, param, value):
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.replace(" ", "").split(","))
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated indices such as 12,40; got {value!r}"
        ) from None


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--plot",
    is_flag=True,
    help="Write a PNG of every parameter map (on sky axes when the cube has a "
    "WCS) and of the status map; of the origin and refits maps of neighbour refits; of a "
    "model selection's chosen candidate and margin, then of each candidate's maps.",
)
@click.option(
    "--plot-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the PNGs (default: plots/ in the analysis folder, or "
    "<store>-plots beside a store).",
)
@click.option(
    "--pixel",
    callback=_parse_pixel,
    help="Fit this pixel again and plot data, start, fit and residuals, e.g. "
    "--pixel 12,40 (indices in the maps' order); a joint fit: one panel and one "
    "line per dataset.",
)
@click.option(
    "--top",
    default=5,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="How many error and warning messages to list.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the summary as JSON (with --pixel, the pixel's fit under 'pixel'); "
    "the files written are listed on stderr.",
)
@_guarded
def inspect(path, plot, plot_dir, pixel, top, as_json):
    """Summarise PATH: an analysis folder, a maps store (zarr), a diagnostics folder, or
    the output folder of a model selection.

    Prints the number of fits, counts per status, the most frequent error
    and warning messages with example pixels, parameter percentiles, and
    the passes of neighbour refits; for a model selection, the pixels each
    candidate won and the margins, then each candidate's summary.  With
    --pixel, fits that pixel again from the input of the analysis folder
    (every dataset of a joint fit; the candidate chosen there in a model
    selection) and plots it.
    """
    import json

    from .diagnostics import plot_maps, summarize

    if pixel is not None and not (path / "config.yaml").is_file():
        raise click.ClickException(
            f"--pixel re-fits from the input named in the config, so it needs the "
            f"analysis folder of `parfit run` (with config.yaml); {path} is not one"
        )
    summary = summarize(path, top=top)
    shape = tuple(summary.shape or ())
    if (
        pixel is not None
        and shape
        and (len(pixel) != len(shape) or not all(0 <= i < n for i, n in zip(pixel, shape)))
    ):
        raise click.BadParameter(
            f"{','.join(map(str, pixel))} is not a pixel of the maps, whose shape is {shape}",
            param_hint="--pixel",
        )
    fit = target = None
    if pixel is not None:
        from .analysis import Analysis

        analysis = Analysis.read(path)
        fit = analysis.fit_pixel(pixel)  # a selection's: the candidate chosen there
    if not as_json:
        click.echo(summary.text())
    # With --json, stdout is the JSON alone: what was written is said on stderr.
    say = functools.partial(click.echo, err=as_json)
    if plot or pixel is not None:
        if plot_dir is None:
            plot_dir = (
                (path / "plots")
                if (path / "config.yaml").is_file()
                else path.parent / f"{path.name.removesuffix('.zarr')}-plots"
            )
        plot_dir.mkdir(parents=True, exist_ok=True)
    if plot:
        written = plot_maps(path, plot_dir)
        say(f"wrote {len(written)} PNG(s) to {plot_dir}")
    if fit is not None:
        target = plot_dir / f"pixel_{'_'.join(map(str, pixel))}.png"
        analysis.plot_pixel(pixel, target, fit=fit)
    if as_json:
        data = summary.to_dict()
        if fit is not None:
            data["pixel"] = _pixel_dict(fit, target)
        click.echo(json.dumps(data, indent=2))
    elif fit is not None:
        click.echo("\n".join(_pixel_lines(fit)))
    if target is not None:
        say(f"wrote {target}")


def _number(value):
    """A parameter value for JSON: None where it is not finite."""
    return value if math.isfinite(value) else None


def _own_parameters(fit, name):
    """The fitted values of dataset ``name`` of a joint pixel, by its own parameter names."""
    prefix = f"{name}."
    return {k[len(prefix) :]: v for k, v in fit["parameters"].items() if k.startswith(prefix)}


def _pixel_lines(fit):
    """What ``inspect --pixel`` prints of a pixel fitted again (a line per dataset if joint)."""
    from .status import Status, flag_names

    flags = ", ".join(flag_names(fit["flags"]))
    head = f"pixel {fit['pixel']}: {fit['status'].name}{f' (flags {flags})' if flags else ''}"
    if "candidate" in fit:
        head += f", candidate {fit['candidate']}"
    if "datasets" not in fit:
        values = ", ".join(f"{k}={v:.6g}" for k, v in fit["parameters"].items())
        return [f"{head}; {values}"]
    lines = [head]
    for name in fit["datasets"]:
        units = [f"data in {fit['data_unit'][name]}"] if fit["data_unit"][name] else []
        units += [f"x in {fit['x_unit'][name]}"] if fit["x_unit"][name] else []
        what = ", ".join([f"{len(fit['data'][name])} samples", *units])
        if fit["fitted"][name] is None and fit["status"] == Status.OK:
            what += "; no valid sample here, not fitted"
        values = ", ".join(f"{k}={v:.6g}" for k, v in _own_parameters(fit, name).items())
        lines.append(f"  {name} ({what}): {values}")
    return lines


def _pixel_dict(fit, target):
    """What ``inspect --pixel --json`` adds under ``"pixel"`` (per dataset if joint)."""
    from .status import flag_names

    out = {
        "pixel": list(fit["pixel"]),
        "status": fit["status"].name,
        "flags": flag_names(fit["flags"]),
        "parameters": {k: _number(v) for k, v in fit["parameters"].items()},
        "plot": None if target is None else str(target),
    }
    if "candidate" in fit:
        out["candidate"] = fit["candidate"]
    if "datasets" not in fit:
        out.update(x_unit=fit["x_unit"], data_unit=fit["data_unit"])
        return out
    out["datasets"] = {
        name: {
            "n_samples": len(fit["data"][name]),
            "fitted": fit["fitted"][name] is not None,
            "x_unit": fit["x_unit"][name],
            "data_unit": fit["data_unit"][name],
            "parameters": {k: _number(v) for k, v in _own_parameters(fit, name).items()},
        }
        for name in fit["datasets"]
    }
    return out


@main.command()
@click.option(
    "--output",
    "-o",
    default="parfit-demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the maps (zarr), the PNG and the summary.",
)
@click.option(
    "--size",
    default=256,
    show_default=True,
    type=click.IntRange(2, 4096),
    help="The cube has size x size pixels.",
)
@click.option(
    "--channels",
    default=60,
    show_default=True,
    type=click.IntRange(10, 100000),
    help="Number of spectral channels.",
)
@click.option(
    "--scheduler",
    default="threads",
    show_default=True,
    type=click.Choice(["synchronous", "threads", "processes"]),
    help="dask scheduler to fit with.",
)
@click.option(
    "--initial",
    default="guess",
    show_default=True,
    type=click.Choice(["guess", "model"]),
    help="Start each pixel from a guess made from its own data, or from the "
    "model's shared starting values.",
)
@click.option(
    "--fitter",
    default="batched",
    show_default=True,
    type=click.Choice(["batched", "trf", "dogbox", "lm"]),
    help="parfit's batched solver, or scipy's least_squares per fit.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed of the cube.")
@click.option("--overwrite", is_flag=True, help="Replace the demo files of an earlier run.")
@click.option(
    "--config",
    "write_config",
    is_flag=True,
    help="Also write the cube as OUTPUT/cube.fits and a config that fits it, "
    "OUTPUT/fit.yaml: edit that file to fit your own data with `parfit run`.",
)
def demo(output, size, channels, scheduler, initial, fitter, seed, overwrite, write_config):
    """Fit a synthetic Gaussian-line cube with known truth; no download needed.

    Makes a CHANNELS x SIZE x SIZE spectral cube (one Gaussian line per
    pixel plus noise, a few blanked pixels), fits every pixel, prints a
    summary against the truth and writes OUTPUT/maps.zarr, OUTPUT/maps.png
    and OUTPUT/summary.txt.
    """
    from . import parallel_fit
    from .datasets import gaussian_cube
    from .diagnostics import plot_overview

    names = DEMO_FILES + (CONFIG_DEMO_FILES if write_config else ())
    existing = [name for name in names if (output / name).exists()]
    if existing and not overwrite:
        raise click.ClickException(
            f"{output} already holds {', '.join(existing)} from an earlier run; pass "
            f"--overwrite to replace them or --output to write elsewhere"
        )
    cube = gaussian_cube((channels, size, size), seed=seed, n_blank=min(8, size * size // 4))
    click.echo(
        f"Fitting a Gaussian to each of {size * size} spectra of {channels} channels "
        f"with the {fitter!r} fitter, initial={initial!r}, on the {scheduler!r} "
        f"scheduler ..."
    )
    start = time.perf_counter()
    result = parallel_fit(
        cube.model,
        cube.data,
        world=cube.world,
        fitting_axes=0,
        data_unit=cube.unit,
        scheduler=scheduler,
        initial=initial,
        fitter=fitter,
    )
    elapsed = time.perf_counter() - start

    lines = [
        f"fits: {result.n_fits}   succeeded: {int(result.success.sum())}   "
        f"time: {elapsed:.1f} s ({result.n_fits / elapsed:.0f} fits/s)",
        "status counts: " + ", ".join(f"{s.name}={n}" for s, n in result.status_counts().items()),
        "median |fitted - true| over successful fits (median 1-sigma error):",
    ]
    ok = result.success
    for name in result.param_names:
        diff = np.abs(result.parameters[name] - cube.truth[name])[ok]
        err = result.errors[name][ok]
        lines.append(f"  {name:<10} {np.median(diff):.4f}   ({np.nanmedian(err):.4f})")
    text = "\n".join(lines)
    click.echo(text)

    output.mkdir(parents=True, exist_ok=True)
    for name in existing:
        _remove_demo_file(output / name)
    result.to_zarr(output / "maps.zarr")
    plot_overview(
        output / "maps.zarr",
        output / "maps.png",
        reference=cube.truth,
        reference_label="true",
        dpi=80,
    )
    (output / "summary.txt").write_text(text + "\n\n" + result.summary() + "\n")
    click.echo(f"wrote {output / 'maps.zarr'}, {output / 'maps.png'} and {output / 'summary.txt'}")
    if write_config:
        cube.to_fits(output / "cube.fits")
        (output / "fit.yaml").write_text(_demo_config(scheduler, initial, fitter))
        click.echo(
            f"wrote {output / 'cube.fits'} and {output / 'fit.yaml'}; run the same fit "
            f"from the config with: parfit run {output / 'fit.yaml'}"
        )


def _demo_config(scheduler, initial, fitter):
    """The demo as an analysis config (validated before it is written)."""
    from parfit.config import parse_config

    text = DEMO_CONFIG.format(scheduler=scheduler, initial=initial, fitter=fitter)
    parse_config(text, check_files=False)
    return text


CONFIG_DEMO_FILES = ("cube.fits", "fit.yaml")
DEMO_CONFIG = """\
# The parfit demo as a config: `parfit run fit.yaml` fits cube.fits (written by
# `parfit demo --config`) and writes results/.  To fit your own cube, change
# input.path (and the model), check with `parfit validate fit.yaml`, then run.
# `parfit config` prints every option with its default.
input:
  path: cube.fits           # relative to this file's folder
  fitting_axes: spectral    # the WCS spectral axis of the FITS cube
model:
  components:
    - type: Gaussian1D
      amplitude: {{value: 2.0, bounds: [0, null]}}
      mean: {{value: "0 km/s", bounds: ["-50 km/s", "50 km/s"]}}
      stddev: {{value: "5 km/s", bounds: ["0.1 km/s", "30 km/s"]}}
  initial: {initial}            # 'guess': each pixel starts from its own data
fitter:
  name: {fitter}
run:
  scheduler: {scheduler}
  max_failed_fraction: 0.01
diagnostics:
  mode: error
output:
  path: results
  format: zarr
"""


def _remove_demo_file(path):
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
