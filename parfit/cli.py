"""The ``parfit`` command."""

import logging
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
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.option("--output", "-o", default="parfit-demo", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the maps (zarr), the PNG and the summary.")
@click.option("--size", default=256, show_default=True, type=click.IntRange(2, 4096),
              help="The cube has size x size pixels.")
@click.option("--channels", default=60, show_default=True, type=click.IntRange(10, 100000),
              help="Number of spectral channels.")
@click.option("--scheduler", default="threads", show_default=True,
              type=click.Choice(["synchronous", "threads", "processes"]),
              help="dask scheduler to fit with.")
@click.option("--initial", default="guess", show_default=True,
              type=click.Choice(["guess", "model"]),
              help="Start each pixel from a guess made from its own data, or from the "
                   "model's shared starting values.")
@click.option("--fitter", default="batched", show_default=True,
              type=click.Choice(["batched", "trf", "dogbox", "lm"]),
              help="parfit's batched solver, or scipy's least_squares per fit.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed of the cube.")
@click.option("--overwrite", is_flag=True, help="Replace the demo files of an earlier run.")
def demo(output, size, channels, scheduler, initial, fitter, seed, overwrite):
    """Fit a synthetic Gaussian-line cube with known truth; no download needed.

    Makes a CHANNELS x SIZE x SIZE spectral cube (one Gaussian line per
    pixel plus noise, a few blanked pixels), fits every pixel, prints a
    summary against the truth and writes OUTPUT/maps.zarr, OUTPUT/maps.png
    and OUTPUT/summary.txt.
    """
    from . import parallel_fit
    from .datasets import gaussian_cube

    existing = [name for name in DEMO_FILES if (output / name).exists()]
    if existing and not overwrite:
        raise click.ClickException(
            f"{output} already holds {', '.join(existing)} from an earlier run; pass "
            f"--overwrite to replace them or --output to write elsewhere"
        )
    cube = gaussian_cube((channels, size, size), seed=seed, n_blank=min(8, size * size // 4))
    click.echo(f"Fitting a Gaussian to each of {size * size} spectra of {channels} channels "
               f"with the {fitter!r} fitter, initial={initial!r}, on the {scheduler!r} "
               f"scheduler ...")
    start = time.perf_counter()
    result = parallel_fit(cube.model, cube.data, world=cube.world, fitting_axes=0,
                          data_unit=cube.unit, scheduler=scheduler, initial=initial,
                          fitter=fitter)
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
    _plot_maps(result, cube.truth, output / "maps.png")
    (output / "summary.txt").write_text(text + "\n\n" + result.summary() + "\n")
    click.echo(f"wrote {output / 'maps.zarr'}, {output / 'maps.png'} and "
               f"{output / 'summary.txt'}")


def _remove_demo_file(path):
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def _plot_maps(result, truth, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = result.param_names
    fig, axes = plt.subplots(2, len(names) + 1, figsize=(4 * (len(names) + 1), 7),
                             constrained_layout=True)
    for k, name in enumerate(names):
        vmin, vmax = np.nanpercentile(truth[name], [1, 99])
        for row, (label, image) in enumerate((("fitted", result.parameters[name]),
                                              ("true", truth[name]))):
            ax = axes[row, k]
            im = ax.imshow(image, origin="lower", vmin=vmin, vmax=vmax, cmap="viridis")
            ax.set_title(f"{label} {name}")
            fig.colorbar(im, ax=ax, shrink=0.8)
    ax = axes[0, -1]
    im = ax.imshow(result.status, origin="lower", cmap="tab10", vmin=0, vmax=9)
    ax.set_title("status (1 = ok)")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax = axes[1, -1]
    im = ax.imshow(result.statistic, origin="lower", cmap="magma")
    ax.set_title("chi-square")
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
