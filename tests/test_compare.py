"""bench/compare.py without a GPU: the sleep sizing, the Timer's call order and clocks on a stand-in
torch, and the markdown that `--render` writes from a small synthetic results JSON."""

import importlib.util
import json
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("powerret_bench_compare", ROOT / "bench" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sleep_cycles(compare):
    assert compare.sleep_cycles(1.0, 1_980_000) == int(2.1 * 1_980_000)  # kHz = cycles per ms
    assert compare.sleep_cycles(1.0) == int(2.1 * 2e6)  # clock unknown: 2e6 cycles per ms
    assert compare.sleep_cycles(0.0) == int(0.1 * 2e6)
    assert compare.sleep_cycles(1e3, 1_500_000) == int(compare.SLEEP_CAP_MS * 1_500_000)


class FakeTorch:
    """Just enough of torch for Timer: logs what is queued; every event pair times 0.5 ms."""

    uint8 = "uint8"

    def __init__(self, log, clock_rate=1_000_000):
        self.log = log
        props = types.SimpleNamespace(L2_cache_size=1 << 20, clock_rate=clock_rate)
        buf = types.SimpleNamespace(zero_=lambda: log.append("flush"))

        class Event:
            def __init__(self, enable_timing):
                assert enable_timing

            def record(self):
                log.append("event")

            def elapsed_time(self, other):
                return 0.5

        self.cuda = types.SimpleNamespace(get_device_properties=lambda i: props, Event=Event,
                                          synchronize=lambda: log.append("sync"),
                                          _sleep=lambda cycles: log.append(("sleep", cycles)))
        self.empty = lambda *a, **k: buf


@pytest.mark.parametrize("flush", [True, False])
def test_timer_hides_host_time(compare, flush):
    log = []
    timer = compare.Timer(FakeTorch(log), budget_ms=100.0)
    timing = timer(lambda: log.append("call"), working_set_bytes=(1 << 20) if flush else (4 << 20))
    assert timing["ms"] == timing["ms_min"] == timing["ms_max"] == 0.5
    assert timing["flushed"] == flush and 5 <= timing["iters"] <= 200
    assert 0 < timing["ms_host"] < 1e3
    sleeps = [i for i, x in enumerate(log) if isinstance(x, tuple)]
    assert len(sleeps) == timing["iters"]
    cycles = log[sleeps[0]][1]
    assert cycles >= int(0.1 * 1_000_000)  # at least the 0.1 ms margin at the device's clock
    for i in sleeps:  # [flush], sleep, start event, the call, stop event
        assert log[i:i + 4] == [("sleep", cycles), "event", "call", "event"]
        assert (log[i - 1] == "flush") == flush
    # host-inclusive calls after the timed ones: [flush], sync, call, sync
    tail = log[sleeps[-1] + 4:]
    assert tail[0] == "sync" and tail.count("call") == max(5, timing["iters"] // 4)


def record(op, impl, b, t, ms, **extra):
    return {"op": op, "impl": impl, "b": b, "t": t, "hq": 8, "h": 8, "d": 64, "e": 64,
            "deg": None if impl == "sdpa" else 2, "dtype": "bf16", "gated": impl != "sdpa", "ms": ms,
            "device": "Test GPU", "date": "2026-11-24", "commit": "abc1234", "ms_min": ms, "ms_max": ms,
            "iters": 5, **extra}


def test_render_reference_notes(compare, tmp_path, capsys):
    records = [
        record("forward", "sdpa", 1, 4096, 0.0673, ms_host=0.103),
        record("forward", "retention", 1, 4096, 1.1358, ms_host=2.0993),
        record("decode", "retention", 1, 65536, 0.12),  # an old record: no ms_host
        record("decode", "retention", 64, 65536, 0.7394, ms_host=1.4287),
    ]
    path = tmp_path / "in.json"
    path.write_text(json.dumps(records))
    assert compare.main(["--render", str(path), "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    md = (tmp_path / "out" / "test-gpu.md").read_text()
    rows = {tuple(c.strip() for c in line.split("|")[1:5]): [c.strip() for c in line.split("|")[5:-1]]
            for line in md.splitlines() if line.startswith("| forward") or line.startswith("| decode")}
    assert rows[("forward", "retention", "1", "4096")] == [
        "1.011", "1.136", "1.12", "host-bound on the reference machine (*); this run host-inclusive 2.099 ms"]
    assert rows[("decode", "retention", "1", "65536")] == [
        "0.733", "0.1200", "0.16", "host-bound on the reference machine (*); host-inclusive not recorded"]
    assert rows[("decode", "retention", "64", "65536")] == ["0.74", "0.7394", "1.00", ""]
    assert rows[("forward", "sdpa", "1", "4096")] == ["0.069", "0.0673", "0.98", ""]
    assert "(*) These two reference numbers were host-bound" in md
    assert "Records without ms_host were timed before" in md
