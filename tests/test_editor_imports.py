"""Editors follow our imports: the import names are real paths (htsat_live/stream -> stream/), so a static
tool that never runs the installed package's import machinery still lands in the source file."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def goto(source: str, column: int) -> list[Path]:
    """Where jedi's go-to-definition lands from `column` of the one-line `source`, read statically."""
    import jedi  # imported by the test, not at collection: jedi fixes its cache folder when imported

    script = jedi.Script(source, path=ROOT / "probe.py", project=jedi.Project(ROOT))
    return [Path(name.module_path).resolve() for name in script.goto(1, column, follow_imports=True)]


def test_goto_on_an_imported_class_lands_in_its_module():
    source = "from htsat_live.stream.ring import RingBuffer\n"
    assert goto(source, source.index("RingBuffer") + 1) == [ROOT / "stream" / "ring.py"]


def test_goto_on_a_module_name_lands_in_its_file():
    source = "import htsat_live.model.frontend\n"
    assert goto(source, source.index("frontend") + 1) == [ROOT / "model" / "frontend.py"]
