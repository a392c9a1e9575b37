"""Install the CLIPCAM FiftyOne plugin (shipped in ``clipcam_utils/fiftyone_plugin``) into a plugins directory.

``python -m clipcam_utils fiftyone-plugin install`` copies the plugin's files to
``<plugins dir>/clipcam`` (FiftyOne's ``fo.config.plugins_dir``, i.e. ``$FIFTYONE_PLUGINS_DIR``, unless
``--plugins-dir`` says otherwise); ``uninstall`` removes that copy. A folder of that name that is not this
plugin is never touched: both commands refuse and say what to do.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from .fiftyone_export import configure_fiftyone

PLUGIN_NAME = "@clipcam/clipcam"
INSTALL_DIRNAME = "clipcam"
SOURCE_DIR = Path(__file__).resolve().parent / "fiftyone_plugin"
PLUGIN_FILES = ("fiftyone.yml", "__init__.py")

__all__ = ["PLUGIN_NAME", "SOURCE_DIR", "install_plugin", "plugins_dir", "uninstall_plugin"]


def plugins_dir(folder: str | Path | None = None) -> Path:
    """The plugins directory in use: ``folder`` if given, else FiftyOne's configured one."""
    if folder is not None:
        return Path(folder).expanduser().resolve()
    configure_fiftyone()
    import fiftyone as fo

    if not fo.config.plugins_dir:
        raise ValueError("FiftyOne has no plugins directory configured; set FIFTYONE_PLUGINS_DIR or pass one")
    return Path(fo.config.plugins_dir).expanduser().resolve()


def _plugin_name_at(folder: Path) -> str | None:
    """The ``name`` in a folder's fiftyone.yml/.yaml, or None when it has none (or cannot be read)."""
    for filename in ("fiftyone.yml", "fiftyone.yaml"):
        path = folder / filename
        if path.is_file():
            try:
                return (yaml.safe_load(path.read_text()) or {}).get("name")
            except (yaml.YAMLError, AttributeError):
                return None
    return None


def _refuse_foreign(target: Path, action: str) -> None:
    if target.exists() and (not target.is_dir() or _plugin_name_at(target) != PLUGIN_NAME):
        raise FileExistsError(
            f"{target} exists and is not the CLIPCAM plugin ({PLUGIN_NAME}); refusing to {action} it. "
            "Move it away, or use --plugins-dir to pick another plugins directory"
        )


def install_plugin(folder: str | Path | None = None) -> Path:
    """Copy the plugin into ``<plugins dir>/clipcam`` (replacing an older copy of it); returns that folder."""
    root = plugins_dir(folder)
    target = root / INSTALL_DIRNAME
    _refuse_foreign(target, "replace")
    for other in root.glob("**/fiftyone.y*ml") if root.is_dir() else ():
        if other.parent != target and _plugin_name_at(other.parent) == PLUGIN_NAME:
            raise FileExistsError(
                f"the CLIPCAM plugin is already installed at {other.parent}; remove that copy first "
                "(FiftyOne would load only one of the two)"
            )
    staging = root / f".{INSTALL_DIRNAME}-installing"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in PLUGIN_FILES:
        shutil.copy2(SOURCE_DIR / name, staging / name)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target


def uninstall_plugin(folder: str | Path | None = None) -> Path | None:
    """Remove ``<plugins dir>/clipcam`` if it is this plugin; returns the removed folder (None: not installed)."""
    target = plugins_dir(folder) / INSTALL_DIRNAME
    if not target.exists():
        return None
    _refuse_foreign(target, "remove")
    shutil.rmtree(target)
    return target
