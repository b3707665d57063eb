"""INR datasets: image sources, the one-file INR store, fitting a store, importers, exporters."""

from nngraph.data.build import build_store, default_store_path
from nngraph.data.exporters import export_dwsnets, export_wsa
from nngraph.data.importers import import_dwsnets, import_wsa
from nngraph.data.sources import SOURCES, ImageSource, load_source
from nngraph.data.store import SPLITS, INRStore, assign_splits, load_store, reconstruct, save_store

__all__ = [
    "SOURCES",
    "SPLITS",
    "INRStore",
    "ImageSource",
    "assign_splits",
    "build_store",
    "default_store_path",
    "export_dwsnets",
    "export_wsa",
    "import_dwsnets",
    "import_wsa",
    "load_source",
    "load_store",
    "reconstruct",
    "save_store",
]
