"""Install the CLIPCAM FiftyOne plugin (shipped in ``clipcam_utils/fiftyone_plugin``) into a plugins directory.

``python -m clipcam_utils fiftyone-plugin install`` copies the plugin's files to
``<plugins dir>/clipcam`` (FiftyOne's ``fo.config.plugins_dir``, i.e. ``$FIFTYONE_PLUGINS_DIR``, unless
``--plugins-dir`` says otherwise) and records what it wrote, with each file's SHA-256, in a manifest
(``.clipcam-install.json``) beside them; ``uninstall`` removes that copy.

Nothing is ever deleted that this installer did not write: ``uninstall`` (and a reinstall, which replaces
the old copy) removes the folder only when it holds exactly the manifest's files, unchanged, plus the
bytecode Python compiled from them. A folder without our manifest (a user's own ``clipcam`` folder, a
hand-made or symlinked copy of the plugin), a file edited since the install, or a file added to the
folder makes both commands refuse, with nothing removed, and say what to do.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import yaml

from .fiftyone_export import configure_fiftyone

PLUGIN_NAME = "@clipcam/clipcam"
INSTALL_DIRNAME = "clipcam"
SOURCE_DIR = Path(__file__).resolve().parent / "fiftyone_plugin"
PLUGIN_FILES = ("fiftyone.yml", "__init__.py")
MANIFEST = ".clipcam-install.json"

__all__ = ["MANIFEST", "PLUGIN_NAME", "SOURCE_DIR", "install_plugin", "plugins_dir", "uninstall_plugin"]


def plugins_dir(folder: str | Path | None = None) -> Path:
    """The plugins directory in use: ``folder`` if given, else FiftyOne's configured one."""
    if folder is not None:
        return Path(folder).expanduser().resolve()
    configure_fiftyone()
    import fiftyone as fo

    if not fo.config.plugins_dir:
        raise ValueError("FiftyOne has no plugins directory configured; set FIFTYONE_PLUGINS_DIR or pass one")
    return Path(fo.config.plugins_dir).expanduser().resolve()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _plugin_name_at(folder: Path) -> str | None:
    """The ``name`` in a folder's fiftyone.yml/.yaml, or None when it has none (or cannot be read)."""
    for filename in ("fiftyone.yml", "fiftyone.yaml"):
        path = folder / filename
        if path.is_file():
            try:
                return (yaml.safe_load(path.read_text()) or {}).get("name")
            except (yaml.YAMLError, AttributeError, UnicodeDecodeError):
                return None
    return None


def _manifest_files(folder: Path) -> dict[str, str] | None:
    """{file name: SHA-256} from our manifest in ``folder``, or None when there is no valid one."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("plugin") != PLUGIN_NAME:
        return None
    files = manifest.get("files")
    if not isinstance(files, dict):
        return None
    # Only plain names: a manifest can never point uninstall outside its folder.
    if not all(isinstance(n, str) and isinstance(d, str) and Path(n).name == n and n not in ("", ".", "..")
               for n, d in files.items()):  # fmt: skip
        return None
    return files


def _refuse(target: Path, why: str) -> FileExistsError:
    return FileExistsError(
        f"{target} {why}; nothing was removed. Move it away (or remove it yourself), or use --plugins-dir to "
        "pick another plugins directory"
    )


def _changed(path: Path, digest: str) -> bool:
    """Whether an installed file is no longer what was installed (edited, or replaced by a link or folder)."""
    if not path.exists() and not path.is_symlink():
        return False  # deleted: nothing of the user's is there
    return path.is_symlink() or not path.is_file() or _sha256(path) != digest


def _our_files(target: Path) -> list[Path]:
    """Every path in ``target`` that the installer wrote (or Python compiled from it), deepest first.

    Raises FileExistsError, touching nothing, unless ``target`` is exactly an unchanged install of ours.
    """
    if target.is_symlink() or not target.is_dir():
        raise _refuse(target, f"exists and is not a folder installed by this command (not {PLUGIN_NAME})")
    files = _manifest_files(target)
    if files is None:
        if _plugin_name_at(target) == PLUGIN_NAME:
            raise _refuse(
                target,
                f"is a copy of the CLIPCAM plugin that this command did not install (no valid {MANIFEST})",
            )
        raise _refuse(target, f"exists and is not the CLIPCAM plugin ({PLUGIN_NAME})")
    changed = sorted(n for n, digest in files.items() if _changed(target / n, digest))
    if changed:
        raise _refuse(target, f"holds files changed since they were installed ({', '.join(changed)})")
    ours = {target / MANIFEST, *(target / n for n in files)}
    cache = target / "__pycache__"
    stems = {Path(n).stem for n in files if n.endswith(".py")}
    if cache.is_dir() and not cache.is_symlink():
        ours |= {
            p for p in cache.iterdir() if p.is_file() and p.suffix == ".pyc" and p.name.split(".")[0] in stems
        }
        ours.add(cache)
    found = set(target.rglob("*"))
    extra = sorted(str(p.relative_to(target)) for p in found - ours)
    if extra:
        raise _refuse(target, f"holds files this command did not install ({', '.join(extra[:5])}"
                      f"{', ...' if len(extra) > 5 else ''})")  # fmt: skip
    return sorted((p for p in ours if p.exists() or p.is_symlink()), key=lambda p: len(p.parts), reverse=True)


def _remove(target: Path, paths: list[Path]) -> None:
    for path in paths:  # deepest first: files, then the (by now empty) bytecode folder
        path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
    target.rmdir()  # fails, rather than deleting anything, if something appeared meanwhile


def install_plugin(folder: str | Path | None = None) -> Path:
    """Copy the plugin into ``<plugins dir>/clipcam`` (replacing an unchanged older install); returns that folder."""
    root = plugins_dir(folder)
    target = root / INSTALL_DIRNAME
    previous = _our_files(target) if target.exists() or target.is_symlink() else None
    for other in root.glob("**/fiftyone.y*ml") if root.is_dir() else ():
        if target not in (other.parent, *other.parents) and _plugin_name_at(other.parent) == PLUGIN_NAME:
            raise FileExistsError(
                f"the CLIPCAM plugin is already installed at {other.parent}; remove that copy first "
                "(FiftyOne would load only one of the two)"
            )
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{INSTALL_DIRNAME}-installing-", dir=root))  # a new, unique name
    try:
        for name in PLUGIN_FILES:
            shutil.copy2(SOURCE_DIR / name, staging / name)
        manifest = {"plugin": PLUGIN_NAME, "source": str(SOURCE_DIR),
                    "files": {name: _sha256(staging / name) for name in PLUGIN_FILES}}  # fmt: skip
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if previous is not None:
            _remove(target, previous)
        staging.rename(target)
    finally:
        if staging.exists():  # only on failure: the folder we just made, holding only what we copied
            shutil.rmtree(staging)
    return target


def uninstall_plugin(folder: str | Path | None = None) -> Path | None:
    """Remove ``<plugins dir>/clipcam`` if it is an unchanged install of ours; returns it (None: not installed)."""
    target = plugins_dir(folder) / INSTALL_DIRNAME
    if not target.exists() and not target.is_symlink():
        return None
    _remove(target, _our_files(target))
    return target
