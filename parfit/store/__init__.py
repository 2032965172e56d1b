"""Streamed, resumable output: parfit maps in a zarr store, written block by block.

``parallel_fit(..., output="maps.zarr")`` writes every block's part of the
maps straight into the store and then records the block as done, so after
a crash the store says exactly which blocks are complete, and
``resume=True`` recomputes only the others.  :meth:`parfit.FitResult.to_zarr`
writes the same layout (:mod:`parfit.store.layout`) in one go, and
:func:`parfit.read_result` reads either lazily.

* :mod:`parfit.store.layout`: the arrays, their fields and attributes;
* :mod:`parfit.store.writer`: create or replace a store, write blocks, finish;
* :mod:`parfit.store.reader`: verify and read a store;
* :mod:`parfit.store.fingerprint`: fingerprints of the input;
* :mod:`parfit.store.lock`: the lock file that keeps two runs apart.

Nothing here imports dask: the functions run on workers.
"""

from parfit.store.fingerprint import hash_block, input_fingerprint
from parfit.store.layout import (
    ATTRS_KEY,
    DONE_NAME,
    HASH_NAME,
    OUTPUT_CUBES,
    field_specs,
    is_parfit_store,
    lock_file,
    store_layout,
)
from parfit.store.reader import (
    StoreReport,
    open_maps_store,
    read_done,
    read_hashes,
    read_map,
    read_output,
    verify_store,
)
from parfit.store.writer import finish, prepare_output, write_block

__all__ = [
    "ATTRS_KEY",
    "DONE_NAME",
    "HASH_NAME",
    "OUTPUT_CUBES",
    "StoreReport",
    "field_specs",
    "finish",
    "hash_block",
    "input_fingerprint",
    "is_parfit_store",
    "lock_file",
    "open_maps_store",
    "prepare_output",
    "read_done",
    "read_hashes",
    "read_map",
    "read_output",
    "store_layout",
    "verify_store",
    "write_block",
]
