"""How fast the HTML viewer is written and opened for a large run (JSON on stdout).

Builds a ``--episodes`` (default 10,000) trajectory JSONL by cycling through real records: either
``--source`` (e.g. a ``trustee demo`` or bench_signal run on the embedded model) or, by default, five
episodes recorded here with the scripted server (solved, wrong arguments, unknown tool, injected HTML,
a sim fault). Each copy gets its own episode id, seed, difficulty and reward so filters and sorts have
work to do. Then it measures:

* ``write_s``: ``read_trajectories`` + ``write_html`` (what ``trustee view run.jsonl --html out.html`` does);
* in headless Chromium (Debian's ``chromium`` + ``chromedriver``, through Selenium):
  ``load_s`` (``driver.get`` until the page has read its data and drawn the list, polled every 5 ms), and
  on the page's own clock ``html_parsed_ms`` (the HTML, data block included, parsed), ``json_parsed_ms``
  (the summaries inflated and parsed) and ``ready_ms`` (filters set up and the list drawn);
  ``open_episode_ms`` (click a row until the episode is rendered: its chunk inflated, the episode parsed),
  ``open_far_episode_ms`` (the last episode, in another chunk, through ``#e<index>``), ``search_first_ms``
  (a text search over every episode; the first one inflates every chunk), ``search_again_ms``,
  ``filter_ms`` (a reward filter), and the list's DOM row count (a virtual list: only the visible rows exist).

Each browser figure is the median of ``--repeat`` page loads. Run it alone: two CPUs shared with a model
server or another benchmark make every figure slower.

Usage: ``python benchmarks/bench_viewer.py [--episodes 10000] [--source run.jsonl] [--repeat 3] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

from trustee_env.catalog import Catalog
from trustee_env.testing import FakeLLMServer
from trustee_env.trajectory import read_trajectories
from trustee_env.viewer_html import write_html

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from recorded_runs import record_run  # noqa: E402  (the tests' five-episode recorder)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
BROWSER_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000")


def scripted_source(folder: Path) -> Path:
    """Five real trajectories from the scripted server (no LM)."""
    servers: list[FakeLLMServer] = []
    envs: list[Any] = []
    catalog = Catalog.load(ROOT / "tests" / "data" / "mock_catalog.json")

    def make_env(handler: Any, **kwargs: Any) -> Any:
        server = FakeLLMServer(handler).start()
        servers.append(server)
        envs.append(gym.make("Trustee-v0", base_url=server.base_url, catalog=catalog, timeout=10.0, **kwargs))
        return envs[-1]

    try:
        return record_run(make_env, folder / "source.jsonl")
    finally:
        for env in envs:
            env.close()
        for server in servers:
            server.stop()


def grow(source: Path, out: Path, episodes: int, seed: int = 0) -> Path:
    """Cycle the source lines into ``episodes`` lines, each with its own id, seed, difficulty and reward."""
    lines = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise SystemExit(f"{source} holds no trajectories")
    rng = random.Random(seed)
    with open(out, "w", encoding="utf-8") as handle:
        for n in range(episodes):
            record = dict(lines[n % len(lines)])
            record["episode_id"] = n
            record["seed"] = n
            record["difficulty"] = float(rng.randint(1, 100))
            if record.get("sim_fault") is None:
                record["reward"] = float(rng.choice([-1, 0, 0, 1, 1]))
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return out


def browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in BROWSER_ARGS:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


# The page reports when it is done (dataset.shown / dataset.filterRun) and how long it took on its own clock.
OPEN_ROW = """
const rows = document.querySelectorAll('#list .row'); rows[rows.length - 1].click();
return Number(rows[rows.length - 1].dataset.index);"""
SET_CONTROL = """
const e = document.getElementById(arguments[0]); e.value = arguments[1]; e.dispatchEvent(new Event('change'));"""


def _until(driver: Any, script: str, expected: Any) -> None:
    deadline = time.perf_counter() + 60
    while driver.execute_script(script) != expected:
        if time.perf_counter() > deadline:
            raise SystemExit(f"timed out waiting for {script!r} == {expected!r}")
        time.sleep(0.005)


def _open_ms(driver: Any, index: int | None = None) -> float:
    """Open the last row on screen, or episode ``index`` through the URL's #e<index>."""
    if index is None:
        index = driver.execute_script(OPEN_ROW)
    else:
        driver.execute_script("location.hash = '#e' + arguments[0]", index)
    _until(driver, "return document.body.dataset.shown", str(index))
    return float(driver.execute_script("return document.body.dataset.openMs"))


def _filter_ms(driver: Any, control: str, value: str) -> float:
    run = int(driver.execute_script("return document.body.dataset.filterRun"))
    driver.execute_script(SET_CONTROL, control, value)
    _until(driver, "return document.body.dataset.filterRun", str(run + 1))
    return float(driver.execute_script("return document.body.dataset.filterMs"))


def measure_browser(page: Path, repeat: int, episodes: int) -> dict[str, Any]:
    driver = browser()
    runs: list[dict[str, float]] = []
    try:
        for _ in range(repeat):
            driver.get("about:blank")
            t0 = time.perf_counter()
            driver.get(page.as_uri())  # returns after the load event; the data is inflated asynchronously
            while not (state := driver.execute_script("return document.body.dataset.ready")):
                time.sleep(0.005)
            load_s = time.perf_counter() - t0
            if state != "1":
                raise SystemExit("the page could not read its data")
            runs.append(
                {
                    "load_s": load_s,
                    "html_parsed_ms": float(driver.execute_script("return document.body.dataset.htmlMs")),
                    "json_parsed_ms": float(driver.execute_script("return document.body.dataset.parseMs")),
                    "ready_ms": float(driver.execute_script("return document.body.dataset.readyMs")),
                    "open_episode_ms": _open_ms(driver),
                    "open_far_episode_ms": _open_ms(driver, episodes - 1),
                    "search_first_ms": _filter_ms(driver, "filter-search", "cancel"),
                    "search_again_ms": _filter_ms(driver, "filter-search", "cancelled"),
                    "filter_ms": _filter_ms(driver, "reward-min", "1"),
                }
            )
        rows = driver.execute_script("return document.querySelectorAll('#list .row').length")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
    out: dict[str, Any] = {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}
    out["load_s_all"] = [round(r["load_s"], 3) for r in runs]
    out["list_rows_in_dom"] = rows
    out["console_errors"] = len(errors)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--source", type=Path, help="trajectory JSONL to cycle (default: 5 scripted episodes)")
    parser.add_argument("--repeat", type=int, default=3, help="page loads to take the median of")
    parser.add_argument("--keep", type=Path, help="keep the JSONL and HTML in this folder (default: a temp dir)")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="trustee-bench-viewer-"))
    folder.mkdir(parents=True, exist_ok=True)
    source = args.source or scripted_source(folder)
    run = grow(source, folder / f"run-{args.episodes}.jsonl", args.episodes)
    page = folder / f"run-{args.episodes}.html"

    t0 = time.perf_counter()
    write_html(read_trajectories(run), page, source=run.name)
    write_s = time.perf_counter() - t0

    result: dict[str, Any] = {
        "episodes": args.episodes,
        "source": str(args.source) if args.source else "scripted (tests/recorded_runs.py)",
        "jsonl_mb": round(run.stat().st_size / 1e6, 2),
        "html_mb": round(page.stat().st_size / 1e6, 2),
        "write_s": round(write_s, 3),
    }
    if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists():
        result["chromium"] = measure_browser(page, args.repeat, args.episodes)
    else:
        result["chromium"] = "not installed (apt-get install chromium chromium-driver)"
    result["page"] = str(page) if args.keep else None
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
