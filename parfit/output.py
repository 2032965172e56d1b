"""The former name of :mod:`parfit.store`, kept so that existing imports work.

``from parfit.output import verify_store`` and ``parfit.output.read_done``
are the functions of :mod:`parfit.store`; new code imports :mod:`parfit.store`.
"""

from parfit.store.fingerprint import (
    hash_block,
    input_fingerprint,
)
from parfit.store.layout import (
    ATTRS_KEY,
    DONE_NAME,
    HASH_NAME,
    HASH_SIZE,
    OUTPUT_CUBES,
    block_grid,
    field_specs,
    is_parfit_store,
    lock_file,
    store_layout,
)
from parfit.store.reader import (
    StoreReport,
    damaged_error,
    open_maps_store,
    read_done,
    read_hashes,
    read_map,
    read_output,
    store_wcs,
    stored_flags,
    stored_start_model,
    verify_store,
)
from parfit.store.writer import (
    check_held,
    check_resume,
    check_target,
    clear_store,
    create_output,
    finish,
    prepare_output,
    unrecord,
    write_block,
    write_fields,
    write_units,
)

__all__ = [
    "ATTRS_KEY",
    "DONE_NAME",
    "HASH_NAME",
    "HASH_SIZE",
    "OUTPUT_CUBES",
    "StoreReport",
    "block_grid",
    "check_held",
    "check_resume",
    "check_target",
    "clear_store",
    "create_output",
    "damaged_error",
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
    "store_wcs",
    "stored_flags",
    "stored_start_model",
    "unrecord",
    "verify_store",
    "write_block",
    "write_fields",
    "write_units",
]
