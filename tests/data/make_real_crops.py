"""Rebuild the real-data crops in this folder from the PyPI packages they come from.

Not run by the tests.  Usage (needs network access to PyPI, h5py for EIS)::

    pip download --no-deps -d /tmp/dl pyspeckit==1.0.4 mpdaf==3.6 eispac==0.99.4
    # unpack each wheel/sdist, then:
    python tests/data/make_real_crops.py PYSPECKIT_SDIST_DIR MPDAF_WHEEL_DIR EISPAC_SDIST_DIR

See README.md in this folder for provenance, licences and the crops made.
"""

import sys
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time

HERE = Path(__file__).parent


def _shift_crpix(header, starts, suffixes=("",)):
    """Move the reference pixel of FITS axes 1, 2, 3 for a crop starting at ``starts``."""
    for axis, start in zip((1, 2, 3), starts):
        for suffix in suffixes:
            key = f"CRPIX{axis}{suffix}"
            if key in header:
                header[key] = header[key] - start


def crop_hcn(src_root):
    """Mopra HCN(1-0) cube from pyspeckit 1.0.4 (GLON/GLAT, VRAD in m/s, K)."""
    path = Path(src_root) / "pyspeckit/tests/data/region5_hcn_crop.fits"
    with fits.open(path) as hdul:
        header = hdul[0].header.copy()
        data = hdul[0].data
    k0, k1, y0, y1, x0, x1 = 79, 307, 4, 34, 14, 46
    out = np.asarray(data[k0:k1, y0:y1, x0:x1], dtype=np.float32)
    _shift_crpix(header, (x0, y0, k0))
    # Drop the alternate description 'A' (AIPS-style VELO-LSR, which wcslib reads
    # as optical velocity, contradicting the primary VRAD axis with the same numbers).
    wcs_roots = ("CRPIX", "CRVAL", "CTYPE", "CDELT", "CUNIT", "WCSNAME")
    for key in [k for k in header if k.endswith("A") and k[:-1].rstrip("0123456789") in wcs_roots]:
        header.remove(key)
    # Starlink bookkeeping and checksums no longer apply to the crop; the
    # DATE-OBS/MJD-OBS pair is a 1950 placeholder that makes astropy.wcs warn.
    for key in ("LBOUND1", "LBOUND2", "LBOUND3", "CHECKSUM", "DATASUM", "DATE-OBS", "MJD-OBS"):
        header.remove(key, ignore_missing=True)
    header.add_history(
        f"parfit tests: cropped from pyspeckit 1.0.4 region5_hcn_crop.fits "
        f"[chan {k0}:{k1}, y {y0}:{y1}, x {x0}:{x1}] (0-based, end-exclusive)"
    )
    header.add_history(
        "parfit tests: removed LBOUNDn, CHECKSUM, DATASUM, placeholder DATE-OBS/MJD-OBS"
    )
    header.add_history(
        "parfit tests: removed alternate WCS 'A' (VELO-LSR duplicate of the VRAD axis)"
    )
    fits.PrimaryHDU(out, header).writeto(HERE / "mopra_hcn_crop.fits", overwrite=True)


def crop_muse(src_root):
    """MUSE WFM cube of the Abell 478 BCG from mpdaf 3.6 ([NII] 6583 window)."""
    path = Path(src_root) / "mpdaf/data/sdetect/minicube.fits"
    with fits.open(path) as hdul:
        prim = hdul[0].header
        header = hdul["DATA"].header.copy()
        data = hdul["DATA"].data
    k0, k1 = 1909, 2009
    out = np.asarray(data[k0:k1], dtype=np.float32)
    _shift_crpix(header, (0, 0, k0))
    new = fits.Header()
    for key in (
        "TELESCOP",
        "INSTRUME",
        "OBJECT",
        "DATE-OBS",
        "MJD-OBS",
        "EXPTIME",
        "ARCFILE",
        "PIPEFILE",
    ):
        if key in prim:
            new[key] = (prim[key], prim.comments[key])
    new["PROGID"] = (prim.get("HIERARCH ESO OBS PROG ID", ""), "ESO programme id")
    skip = {
        "XTENSION",
        "BITPIX",
        "NAXIS",
        "NAXIS1",
        "NAXIS2",
        "NAXIS3",
        "PCOUNT",
        "GCOUNT",
        "EXTNAME",
        "HDUCLASS",
        "HDUDOC",
        "HDUVERS",
        "HDUCLAS1",
        "HDUCLAS2",
        "ERRDATA",
        "QUALDATA",
        "SCIDATA",
        "CHECKSUM",
        "DATASUM",
        "OBJECT",
    }
    for card in header.cards:
        if card.keyword not in skip and card.keyword not in ("COMMENT", "HISTORY", ""):
            new[card.keyword] = (card.value, card.comment)
    new.add_history(
        f"parfit tests: DATA extension of mpdaf 3.6 mpdaf/data/sdetect/minicube.fits, "
        f"channels {k0}:{k1} (0-based, end-exclusive), all 40x40 spaxels"
    )
    fits.PrimaryHDU(out, new).writeto(HERE / "muse_a478_nii_crop.fits", overwrite=True)


def crop_eis(src_root):
    """Hinode/EIS raster, Fe XII 192.39 window, from eispac 0.99.4 (Counts)."""
    import h5py

    root = Path(src_root) / "eispac/data/test"
    stem = "eis_20210306_064444"
    with h5py.File(root / f"{stem}.data.h5") as dh, h5py.File(root / f"{stem}.head.h5") as hh:
        cube = dh["level1/win02"][()]  # (slit y, raster x, wavelength)
        unit = dh["level1/intensity_units"][0].decode()
        wave = hh["wavelength/win02"][()]
        wave_corr = hh["wavelength/wave_corr"][()]
        ccd_offset = hh["ccd_offsets/win02"][()]
        pnt_keys = ("xcen", "ycen", "offset_x", "offset_y", "x_scale", "y_scale")
        pnt = {k: float(hh["pointing/" + k][0]) for k in pnt_keys}
        idx_keys = ("date_obs", "date_end", "telescop", "instrume", "obstitle", "stud_acr")
        idx = {k: hh["index/" + k][0].decode().strip() for k in idx_keys}
        line_id = hh["wininfo/win02/line_id"][0].decode()
    ny, nx, _ = cube.shape
    out = np.transpose(cube, (2, 0, 1)).astype(np.float32)  # (wavelength, y, x)
    out[out <= -100] = np.nan  # EIS marks missing pixels with -100
    # Same WCS as eispac.read_cube builds (AIA-aligned pointing, mean CCD offset,
    # median of the per-pixel corrected wavelength scale).
    corrected = wave[None, None, :] - wave_corr[:, :, None]
    x1 = pnt["xcen"] + pnt["offset_x"] - pnt["x_scale"] * nx / 2.0
    y1 = pnt["ycen"] + pnt["offset_y"] - float(np.mean(ccd_offset)) - pnt["y_scale"] * ny / 2.0
    h = fits.Header()
    h["BUNIT"] = "ct"
    h["TELESCOP"] = idx["telescop"]
    h["INSTRUME"] = idx["instrume"]
    h["DATE-OBS"] = idx["date_obs"]
    h["DATE-END"] = idx["date_end"]
    h["MJD-OBS"] = Time(
        idx["date_obs"], scale="utc"
    ).mjd  # explicit, so astropy.wcs need not fix it
    h["MJD-END"] = Time(idx["date_end"], scale="utc").mjd
    h["OBJECT"] = idx["obstitle"].rstrip("&").strip()[:68]
    h["STUDY"] = idx["stud_acr"]
    h["LINE"] = (line_id, "EIS window name")
    h["WCSAXES"] = 3
    axes = [
        ("HPLN-TAN", x1, pnt["x_scale"], "arcsec"),
        ("HPLT-TAN", y1, pnt["y_scale"], "arcsec"),
        ("WAVE", np.median(corrected[:, :, 0]), np.median(np.diff(corrected, axis=2)), "Angstrom"),
    ]
    for n, (ctype, val, step, cunit) in enumerate(axes, start=1):
        h[f"CTYPE{n}"] = ctype
        h[f"CRPIX{n}"] = 1.0
        h[f"CRVAL{n}"] = float(val)
        h[f"CDELT{n}"] = float(step)
        h[f"CUNIT{n}"] = cunit
    h.add_history(
        f"parfit tests: eispac 0.99.4 eispac/data/test/eis_20210306_064444.data.h5 level1/win02 ({unit})"
    )
    h.add_history(
        "parfit tests: transposed to (wavelength, slit y, raster x); -100 (missing) -> NaN"
    )
    h.add_history("parfit tests: WCS built as eispac.read_cube does; one wavelength scale for all")
    h.add_history(
        "parfit tests: pixels (per-pixel wave_corr spread is about 0.004 A rms, not applied)"
    )
    fits.PrimaryHDU(out, h).writeto(HERE / "eis_fe12_crop.fits", overwrite=True)


if __name__ == "__main__":
    pyspeckit_root, mpdaf_root, eispac_root = sys.argv[1:4]
    crop_hcn(pyspeckit_root)
    crop_muse(mpdaf_root)
    crop_eis(eispac_root)
