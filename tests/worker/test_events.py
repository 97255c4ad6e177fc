"""The worker's JSON event lines: one object per line, naming the run, valid JSON even for NaN."""

from __future__ import annotations

import io
import json
import logging
import math

from worker import events


def test_an_event_is_one_json_line_with_its_run_id():
    stream = io.StringIO()
    events.configure(stream)
    try:
        events.event("epoch_recorded", 42, epoch=3, loss=math.nan, val_loss=math.inf, seconds=0.25)
        events.event("run_failed", 7, logging.ERROR, error="dataset missing")
    finally:
        for handler in list(events.logger.handlers):
            events.logger.removeHandler(handler)
        events.logger.propagate = True
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (first["event"], first["run_id"], first["epoch"], first["level"]) == ("epoch_recorded", 42, 3, "info")
    assert (first["loss"], first["val_loss"]) == ("NaN", "Infinity")  # strict JSON, as the API writes them
    assert first["worker"].endswith(f":{__import__('os').getpid()}") and first["ts"].endswith("+00:00")
    assert (second["event"], second["run_id"], second["level"]) == ("run_failed", 7, "error")
