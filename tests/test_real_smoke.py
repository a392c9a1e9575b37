"""The real profile, end to end: every notebook with ``PROFILE = "real"`` and the README's real-data commands.

An online user's three downloads are replaced by the stand-ins of `tests/standins.py` (random weights of the
real architectures, the real Open Images class list served as FiftyOne's zoo, HICO-DET in its official
layout); everything else is the code a user runs. Notebooks run at the scale of ``CLIPCAM_SMOKE=1``
(`profiles.Profile.size`: one grid, a few scenes, no ScoreCAM), the README's commands with ``--grids 1``.

A test fails on any exception (a failing cell, a non-zero exit status) and on offline-only wording in a
real-profile output (`OFFLINE_PHRASES`). The figures measure nothing (random weights): the test proves that
the real path runs, not what it finds. `make test` runs it; `make test-fast` skips it (marker ``smoke``).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import standins

from clipcam_utils.profiles import SMOKE_ENV, use_profile

pytestmark = [pytest.mark.smoke, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))  # 01-06, and whatever comes next
PARAMETER = 'PROFILE = "offline"'  # the parameter line every notebook has (replaced by PROFILE = "real")
CELL_TIMEOUT = 600  # seconds per cell

# Wording that only the offline profile may print: its model, baseline and dataset names, the ShapesWorld
# claims of its banner and notes, and the sample tags of its FiftyOne datasets. The list is checked against
# what the offline profile really emits (`test_offline_phrases_are_honest`): every pattern catches one of the
# offline profile's texts or committed offline notebook outputs, and none of the real profile's texts.
# ("tiny CLIP" is not in it: only the notebooks' markdown, which both profiles show, still says it.)
OFFLINE_PHRASES = {
    "a ShapesWorld model or baseline name": r"\bshapes-(?:rn|vit|cnn)\b",
    "an offline FiftyOne dataset name": r"\berrors-shapes\b",
    "a ShapesWorld sample tag": r"""source\s*=\s*['"]shapes['"]""",
    "the offline banner": r"Profile 'offline'|ShapesWorld models and scenes|Figures in this notebook are ShapesWorld",
    "a claim that the run is on ShapesWorld data": r"ShapesWorld (?:grids|relations|single|object|figures|scenes)",
    "the offline count of HICO-DET images": r"holds \d+ HICO-DET test image",
}


def offline_wording(text: str) -> list[str]:
    """The `OFFLINE_PHRASES` found in `text`, as 'what: matched text' lines."""
    found = []
    for what, pattern in OFFLINE_PHRASES.items():
        found += [f"{what}: {m.group(0)!r}" for m in re.finditer(pattern, text)]
    return found


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def standin_env(tmp_path_factory) -> dict[str, str]:
    """The environment of a real-profile process: the stand-ins (built once) and ``CLIPCAM_SMOKE=1``."""
    reason = standins.missing_data()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("standins")
    env = {**os.environ, **standins.prepare(root), SMOKE_ENV: "1"}
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(ROOT)])  # this checkout's package first
    env.pop("MPLBACKEND", None)  # the kernel picks its inline backend
    return env


# ---------------------------------------------------------------------------------------------- checks
def profile_texts(profile) -> dict[str, str]:
    """What a profile itself says in notebooks: banner, commands, notes, names, labels and sample tags."""
    return {
        "banner": profile.banner(),
        "objects command": profile.bench_command("objects", 16),
        "actions command": profile.bench_command("actions", 16),
        "action note": profile.action_data_note(),
        "dataset": profile.dataset_name("clipcam-errors"),
        "grids": profile.grids_label,
        "zero-shot data": profile.zero_shot_data(),
        "sample tag": f'source="{profile.object_data}"',
        "models": " ".join(profile.clip_names.values()),
        "baselines": " ".join([*profile.object_baselines.values(), *profile.action_baselines.values()]),
    }


def test_offline_phrases_are_honest():
    """Each offline-only pattern catches something the offline profile shows, and nothing the real one says."""
    import nbformat

    shown = [*profile_texts(use_profile("offline", verbose=False)).values()]
    shown += [output_text(nbformat.read(p, as_version=4)) for p in NOTEBOOKS]  # the committed offline runs
    for what, pattern in OFFLINE_PHRASES.items():
        assert any(re.search(pattern, t) for t in shown), f"{what}: {pattern!r} matches nothing offline"
    for name, text in profile_texts(use_profile("real", verbose=False)).items():
        assert offline_wording(text) == [], f"the real profile's {name} reads as offline: {text!r}"


def test_every_notebook_has_the_profile_parameter():
    """The smoke run switches a notebook by its parameter line; a notebook without it would run offline."""
    import nbformat

    assert len(NOTEBOOKS) >= 6, NOTEBOOKS
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        hits = [c for c in nb.cells if c.cell_type == "code" and PARAMETER in c.source]
        assert len(hits) == 1, f"{path.name}: {len(hits)} code cells hold {PARAMETER!r}, expected exactly 1"


# ---------------------------------------------------------------------------------------------- notebooks
PROBE = """
print(f"smoke probe: profile={profile.name!r} smoke={profile.smoke}")
for _name, _value in list(globals().items()):  # the sample tags of every FiftyOne dataset the notebook made
    if type(_value).__name__ == "Dataset" and "source" in _value.get_field_schema():
        print(f"smoke probe: dataset {_value.name!r}", *(f'source="{s}"' for s in _value.distinct("source")))
"""


def real_copy(path: Path):
    """The notebook with ``PROFILE = "real"`` and a last cell that prints what the run was (`PROBE`)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and PARAMETER in cell.source:
            cell.source = cell.source.replace(PARAMETER, 'PROFILE = "real"')
        if cell.cell_type == "code":
            cell.outputs = []
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    return nb


def output_text(nb) -> str:
    """Every text a notebook's outputs show (streams, text and HTML results, errors), one block per output."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs") or []:
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                for mime in ("text/plain", "text/markdown", "text/html"):
                    if mime in out.get("data", {}):
                        parts.append(str(out.data[mime]))
            elif out.output_type == "error":
                parts.append("\n".join(out.traceback))
    return "\n".join(parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_under_the_real_profile(path, standin_env, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    work = tmp_path / "notebooks"  # the notebooks write to ../out, here next to this copy
    work.mkdir()
    nb = real_copy(path)
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    )
    try:
        client.execute(env=standin_env)  # raises CellExecutionError (the cell and its traceback) on any error
    finally:
        nbformat.write(nb, work / path.name)  # the executed copy, for a look after a failure
    text = output_text(nb)
    assert "smoke probe: profile='real' smoke=True" in text, text[-2000:]
    found = offline_wording(text)
    assert not found, f"{path.name} under the real profile shows offline-only wording: {found}"
    if path.name.startswith("06"):  # its FiftyOne dataset is tagged with the real source
        assert 'source="openimages"' in text, text[-2000:]


# ---------------------------------------------------------------------------------------------- README
README = ROOT / "README.md"
REAL_SECTIONS = ("Offline default vs real CLIP", "Real datasets (when online)", "Benchmarks", "Command line")
REAL_NAMES = re.compile(
    r"--model\s+(?:RN|ViT)|--baseline\s+(?:resnet|vit_|densenet)|--data\s+(?:openimages|hicodet)"
)


def readme_sections(text: str) -> dict[str, str]:
    """README.md by ``##``/``###`` heading: {heading: body}."""
    sections, name = {}, ""
    for line in text.splitlines(keepends=True):
        heading = re.match(r"#{2,3} (.+)", line)
        if heading:
            name = heading.group(1).strip()
        sections[name] = sections.get(name, "") + ("" if heading else line)
    return sections


def code_blocks(body: str, language: str) -> list[str]:
    """The fenced code blocks of one language in a README section."""
    return re.findall(rf"```{language}\n(.*?)```", body, flags=re.S)


def is_real_profile(command: str) -> bool:
    """True for a command that runs a real CLIP or a real baseline (a model or baseline not named shapes-*)."""
    words = shlex.split(command)
    names, taking = [], False
    for word in words:
        if word in ("--model", "--baseline", "--arch"):
            taking = True
        elif word.startswith("-"):
            taking = False
        elif taking:
            names.append(word)
    return any(not n.startswith("shapes-") for n in names)


def readme_commands() -> list[str]:
    """The README's real-profile command lines (continuations joined), in the order it shows them."""
    sections = readme_sections(README.read_text(encoding="utf-8"))
    commands = []
    for name in REAL_SECTIONS:
        for block in code_blocks(sections.get(name, ""), "bash"):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" # ")[0].strip()
                line = re.sub(r"^\S*/python ", "python ", line)  # .venv/bin/python: the kit's own Python
                if line.startswith("python -m clipcam_utils") and is_real_profile(line):
                    commands.append(" ".join(line.split()))
    return commands


def readme_python() -> list[str]:
    """The Python blocks of the README's "Real datasets (when online)" section."""
    return code_blocks(
        readme_sections(README.read_text(encoding="utf-8"))["Real datasets (when online)"], "python"
    )


def test_readme_lists_the_real_profile_commands():
    """The parser finds the README's real-data commands (a renamed section would otherwise run nothing)."""
    commands = readme_commands()
    assert any(c.startswith("python -m clipcam_utils localize") and "--model ViT-B-16" in c for c in commands)
    assert any(
        "bench objects --data openimages" in c and "--baseline resnet50 vit_b_16" in c for c in commands
    )
    assert any("bench actions --data hicodet" in c and "--model RN50 ViT-B-16" in c for c in commands)
    assert not any("shapes-" in c for c in commands), commands  # offline commands are not the real profile's
    assert len(readme_python()) == 1 and "load_openimages_zoo(" in readme_python()[0]
    assert is_real_profile("python -m clipcam_utils bench single --model shapes-rn --baseline resnet50")
    assert not is_real_profile("python -m clipcam_utils bench single --data openimages --model shapes-rn")


@pytest.fixture(scope="session")
def readme_user(standin_env, tmp_path_factory) -> tuple[dict[str, str], Path]:
    """A fresh user: an empty home (FiftyOne's zoo at its default ~/fiftyone) holding HICO-DET as unpacked
    (``~/hico_20160224_det``), and a working folder with a photo (``photo.jpg``) for ``localize``."""
    from clipcam_utils.data_paths import HICODET_ENV

    home = tmp_path_factory.mktemp("home")
    env = {**standin_env, "HOME": str(home)}
    (home / "hico_20160224_det").symlink_to(Path(env.pop(HICODET_ENV)).parent)
    env.pop("FIFTYONE_DATASET_ZOO_DIR")  # the README's paths are FiftyOne's defaults
    work = home / "work"
    work.mkdir()
    photo = sorted((standins.shared_data() / "openimages_v6_val_subset" / "Apple").glob("*.jpg"))[0]
    (work / "photo.jpg").symlink_to(photo)
    return env, work


def smoke_scale(command: str) -> str:
    """A README command at smoke scale: ``--grids 1`` (the one change; everything else as the README shows)."""
    return re.sub(r"--grids \d+", "--grids 1", command)


def check_run(what: str, args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run one README entry; fail on a non-zero exit or offline-only wording in what it printed."""
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    shown = done.stdout + done.stderr
    assert done.returncode == 0, f"{what} exited with {done.returncode}:\n{shown[-4000:]}"
    found = offline_wording(shown)
    assert not found, f"{what} shows offline-only wording: {found}\n{shown[-2000:]}"
    return shown


def test_readme_real_data_runs(readme_user):
    """The README's real-data Python block, then its real-profile commands, in the README's order."""
    env, work = readme_user
    for i, block in enumerate(readme_python()):
        check_run(f"README Python block {i + 1}", [sys.executable, "-c", block], env, work)
    for command in readme_commands():
        args = shlex.split(smoke_scale(command).replace("~/", env["HOME"] + "/"))  # the shell's ~
        assert args[:3] == ["python", "-m", "clipcam_utils"], command
        shown = check_run(command, [sys.executable, *args[1:]], env, work)
        if " bench " in f" {command} ":
            assert "RN50" in shown and "ViT-B-16" in shown and "vit_b_16" in shown, shown[-2000:]
