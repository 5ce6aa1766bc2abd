"""Make the README screenshot: the demo soundscape through the live pipeline into the visualiser,
rendered offscreen (no display needed) and saved as a PNG.

    .venv/bin/python scripts/screenshot.py [--model PATH] [--audio FILE] [--output docs/screenshot.png]
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint (default: the embedded model)")
    # a relative path: the status bar shows the source as given, and a screenshot should not show this machine's folders
    parser.add_argument(
        "--audio", default=os.path.relpath(ROOT / "model" / "data" / "demo.wav"), help="recording shown"
    )
    parser.add_argument("--output", default=str(ROOT / "docs" / "screenshot.png"))
    parser.add_argument("--hop", type=float, default=1.0)
    parser.add_argument("--span", type=int, default=60, help="seconds shown (10, 20, 30 or 60)")
    parser.add_argument("--size", default="1600x900", help="window size WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    os.environ["QT_QPA_PLATFORM"] = "offscreen"

    from PySide6.QtWidgets import QApplication

    from htsat_live.gui.live_data import LiveData
    from htsat_live.gui.local_source import LocalSource
    from htsat_live.gui.receiver import Receiver
    from htsat_live.gui.window import LiveWindow
    from htsat_live.stream.building import load_model_or_explain
    from htsat_live.stream.config import load_config, with_overrides
    from htsat_live.stream.output import Listener
    from htsat_live.stream.pipeline import Pipeline

    model = load_model_or_explain(args.model, "cpu", "torch")
    if model is None:
        return 2
    app = QApplication.instance() or QApplication(sys.argv[:1])
    config = with_overrides(load_config(None), {"publish.enabled": False, "windows.hop": args.hop, "source.fast": True})
    source = LocalSource()
    source.attach(Pipeline(config, model, [args.audio], outputs=[Listener(source.listen)]))
    live = LiveData()
    receiver = Receiver(source, live)
    window = LiveWindow(
        live, "htsat-live", set_threshold=source.set_threshold, event_audio=source.event_audio, span_seconds=args.span
    )
    receiver.connection_changed.connect(window.status_bar.show_connection)
    width, height = (int(v) for v in args.size.split("x"))
    window.resize(width, height)
    receiver.start()
    window.show()
    try:
        while source.pipeline is not None and not source.pipeline.wait(timeout=0.0):  # the file plays to its end
            app.processEvents()
            time.sleep(0.02)
        for _ in range(50):  # the last messages, then one steady view
            app.processEvents()
            time.sleep(0.02)
        while window.display_now()[1]:
            app.processEvents()
            time.sleep(0.02)
        window.redraw(force=True)
        app.processEvents()
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        if not window.save_png(args.output):
            print(f"could not write {args.output}", file=sys.stderr)
            return 1
    finally:
        receiver.stop()
        window.close()
    print(
        f"wrote {args.output} ({width}x{height}, {live.now:.1f} s of {Path(args.audio).name}, "
        f"{len(live.finished)} events)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
