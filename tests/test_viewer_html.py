"""The HTML trajectory viewer: a self-contained page, tested in a real headless Chromium (Debian's package).

The browser tests skip only where Chromium, its driver or Selenium is missing (``.ci/run`` installs them).
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from recorded_runs import INJECTION, record_run

from trustee_env.catalog import Catalog
from trustee_env.cli import main
from trustee_env.testing import FakeLLMServer
from trustee_env.trajectory import read_trajectories
from trustee_env.viewer_html import (
    build_payload,
    decode_payload,
    encode_payload,
    page_data,
    write_audit_html,
    write_html,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
BROWSER_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000")
MOCK_CATALOG = Path(__file__).resolve().parent / "data" / "mock_catalog.json"


@pytest.fixture(scope="module")
def run_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five recorded episodes (solved, wrong arguments, unknown tool, HTML injection, sim fault)."""
    servers: list[FakeLLMServer] = []
    envs: list[Any] = []
    catalog = Catalog.load(MOCK_CATALOG)

    def make_env(handler: Any, **kwargs: Any) -> Any:
        server = FakeLLMServer(handler).start()
        servers.append(server)
        env = gym.make("Trustee-v0", base_url=server.base_url, catalog=catalog, timeout=10.0, **kwargs)
        envs.append(env)
        return env

    try:
        return record_run(make_env, tmp_path_factory.mktemp("run") / "run.jsonl")
    finally:
        for env in envs:
            env.close()
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def page(run_file: Path) -> Path:
    # two episodes per compressed chunk: the five episodes span three, as a large run spans many
    return write_html(read_trajectories(run_file), run_file.with_suffix(".html"), source=run_file.name, chunk_size=2)


# ---- without a browser -------------------------------------------------------------------------------------


def test_encoded_data_keeps_its_value_and_cannot_close_a_script() -> None:
    shared = {"source": "x", "tools": [], "summaries": [{"intent": "</script><!--"}]}
    episodes = [{"text": "</script><script>alert(1)</script> & <img onerror=x>\nline two", "n": [1, 2.5, None]}, {}]
    for chunk_size in (1, 2, 250):
        block = encode_payload(shared, episodes, chunk_size=chunk_size)
        assert re.fullmatch(r"[A-Za-z0-9+/=,]+", block)
        assert block.count(",") == 1 + (len(episodes) - 1) // chunk_size
        assert decode_payload(block) == (shared, episodes)


def test_page_embeds_the_data_once_and_only_its_own_scripts(page: Path, run_file: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert len(re.findall(r"<script\b", text)) == 2  # the data blob and the app: injected text adds none
    assert text.count("</script>") == 2
    assert "http://" not in text and "https://" not in text  # nothing to fetch
    block = page_data(page)
    assert re.fullmatch(r"[A-Za-z0-9+/=,]+", block)  # base64 and commas: no '<' can end the block early
    assert block.count(",") == 3  # the shared part, then three chunks of two episodes
    shared, episodes = decode_payload(block)
    assert len(episodes) == len(shared["summaries"]) == sum(1 for _ in read_trajectories(run_file)) == 5
    assert any(m["content"] == INJECTION for ep in episodes for m in ep["messages"])


def test_payload_shares_tools_and_records_the_world_patch(run_file: Path) -> None:
    shared, episodes = build_payload(read_trajectories(run_file))
    assert len(shared["tools"]) == 3  # the mock catalog, once, whatever the number of episodes
    assert [s["fault"] for s in shared["summaries"]] == [None, None, None, None, "tool"]
    assert shared["summaries"][0]["categories"] == ["mock"]
    first = episodes[0]
    assert all(isinstance(i, int) for i in first["task"]["tools"])
    assert "transcript" not in first
    ops = sorted((op["op"], op["path"]) for op in first["world_patch"])
    assert ops == [("add", "/cancellations"), ("replace", "/records/0/status")]


def test_cli_view_html(run_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "view.html"
    assert main(["view", str(run_file), "--html", str(out)]) == 0
    assert out.is_file() and "5 episodes" in capsys.readouterr().out


def test_docs_viewer_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib", reason='the example also plots: pip install "trustee-env[plot]"')
    monkeypatch.chdir(tmp_path)
    doc = Path(__file__).resolve().parent.parent / "docs" / "viewer.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert blocks
    for block in blocks:
        exec(compile(block, str(doc), "exec"), {"__name__": "__doc_example__"})
    assert (tmp_path / "run.html").is_file() and len(list((tmp_path / "plots").glob("*.png"))) == 4


# ---- in headless Chromium ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Chromium is not installed (apt-get install chromium chromium-driver; .ci/run does it)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the 'test' extra)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in BROWSER_ARGS:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _open(driver: Any, page: Path, fragment: str = "") -> None:
    driver.get(page.as_uri() + fragment)
    if fragment:
        driver.refresh()  # a fragment-only change does not reload the page
    _wait_ready(driver)
    driver.get_log("browser")  # start each test's console log empty


def _wait_ready(driver: Any) -> None:
    """The page inflates its data asynchronously: wait until it says it is ready (or failed)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 20).until(lambda d: d.execute_script("return document.body.dataset.ready"))
    assert driver.execute_script("return document.body.dataset.ready") == "1"


def _wait_shown(driver: Any, index: int) -> None:
    """An episode is inflated and parsed when opened: wait until the page has rendered it."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(lambda d: d.execute_script("return document.body.dataset.shown") == str(index))


def _rows(driver: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#list .row")


def _set(driver: Any, element_id: str, value: str) -> None:
    """Set a filter control and fire the event the page listens to (no debounce wait for 'change')."""
    driver.execute_script(
        "const e = document.getElementById(arguments[0]); e.value = arguments[1];"
        "e.dispatchEvent(new Event(e.tagName === 'SELECT' ? 'change' : 'input'));",
        element_id,
        value,
    )


def _count(driver: Any) -> str:
    return driver.execute_script("return document.getElementById('count').textContent")


def test_page_loads_without_console_errors(browser: Any, page: Path) -> None:
    browser.get(page.as_uri())
    _wait_ready(browser)
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    assert len(_rows(browser)) == 5
    assert _count(browser).startswith("5 of 5 episodes")


def test_filters_and_sort(browser: Any, page: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, page)
    _set(browser, "filter-fault", "any")
    assert _count(browser).startswith("1 of 5") and len(_rows(browser)) == 1
    _set(browser, "filter-fault", "none")
    _set(browser, "reward-min", "0.5")
    WebDriverWait(browser, 5).until(lambda d: _count(d).startswith("1 of 5"))
    assert [row.get_attribute("data-index") for row in _rows(browser)] == ["0"]
    browser.find_element("id", "clear").click()
    assert _count(browser).startswith("5 of 5")
    _set(browser, "filter-search", "LAUNCH_rockets")  # case-insensitive, searches tool calls too
    WebDriverWait(browser, 5).until(lambda d: _count(d).startswith("1 of 5"))
    assert [row.get_attribute("data-index") for row in _rows(browser)] == ["2"]
    browser.find_element("id", "clear").click()
    _set(browser, "filter-termination", "sim_fault")
    assert [row.get_attribute("data-index") for row in _rows(browser)] == ["4"]
    _set(browser, "filter-termination", "")
    _set(browser, "filter-category", "mock")
    assert _count(browser).startswith("5 of 5")
    _set(browser, "sort", "reward-asc")
    rewards = [float(row.text.split("r ")[1].split()[0]) for row in _rows(browser)]
    assert rewards == sorted(rewards) and rewards[0] == -1
    assert browser.get_log("browser") == []


def test_open_episode_shows_injected_html_as_text(browser: Any, page: Path) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, page)
    row = next(r for r in _rows(browser) if r.get_attribute("data-index") == "3")
    row.click()
    _wait_shown(browser, 3)
    detail = browser.find_element(By.ID, "detail")
    assert detail.find_element(By.TAG_NAME, "h2").text.lower() == "episode #3"
    agent_texts = browser.execute_script(
        "return Array.from(document.querySelectorAll('#detail .msg.assistant .text')).map(e => e.textContent)"
    )
    assert INJECTION in agent_texts  # shown verbatim, as text
    assert browser.execute_script("return window.__pwned") is None  # neither the <script> nor onerror ran
    assert detail.find_elements(By.TAG_NAME, "img") == [] and detail.find_elements(By.TAG_NAME, "script") == []
    assert detail.find_elements(By.TAG_NAME, "b") == []
    assert len(browser.find_elements(By.TAG_NAME, "script")) == 2
    assert browser.get_log("browser") == []


def test_episode_sections_world_patch_judge_and_usage(browser: Any, page: Path) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, page, "#e1")  # wrong arguments (an injected </script> among them) that still changed the state
    headings = [h.text.lower() for h in browser.find_elements(By.CSS_SELECTOR, "#detail h2")]
    assert headings == [
        "episode #1",
        "task (hidden from the agent)",
        "expected calls",
        "conversation",
        "tool calls",
        "world state",
        "judge",
        "usage per role",
    ]
    detail = browser.find_element(By.ID, "detail").text
    assert "✗ missing" in detail and "missing expected call(s)" in detail
    assert browser.find_elements(By.CSS_SELECTOR, "#detail .hl-add")
    assert browser.find_elements(By.CSS_SELECTOR, "#detail .hl-rep")
    assert browser.find_elements(By.CSS_SELECTOR, "#detail .hl-del")
    assert "window.__pwned = 3" in detail and browser.execute_script("return window.__pwned") is None
    _open(browser, page, "#e0")
    assert "✓ matched call #0" in browser.find_element(By.ID, "detail").text
    usage_roles = browser.execute_script(
        "const s = Array.from(document.querySelectorAll('#detail section')).pop();"
        "return Array.from(s.querySelectorAll('tr td:first-child')).map(td => td.textContent)"
    )
    assert {"task_generator", "user", "tool", "judge"} <= set(usage_roles)
    assert browser.get_log("browser") == []


def test_keyboard_navigation_and_fault_episode(browser: Any, page: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _open(browser, page, "#e3")
    browser.find_element(By.ID, "list").send_keys(Keys.ARROW_DOWN)
    _wait_shown(browser, 4)
    detail = browser.find_element(By.ID, "detail").text
    assert "EPISODE #4" in detail.upper() and "SIM FAULT · tool · invalid_output" in detail
    assert browser.get_log("browser") == []


def test_screenshot_renders_to_png(browser: Any, page: Path, tmp_path: Path) -> None:
    _open(browser, page, "#e1")
    shot = tmp_path / "viewer.png"
    assert browser.save_screenshot(str(shot))
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 1000 and height >= 700 and len(data) > 30_000


def test_episode_without_a_task_opens(browser: Any, tmp_path: Path) -> None:
    from trustee_env.trajectory import SimFault, Trajectory

    fault = SimFault(role="task_generator", reason="invalid_output", attempts=3, message="<b>no task</b>")
    page = write_html([Trajectory(termination="sim_fault", sim_fault=fault), Trajectory()], tmp_path / "bare.html")
    _open(browser, page, "#e0")
    detail = browser.find_element("id", "detail").text
    assert "SIM FAULT · task_generator · invalid_output" in detail and "<b>no task</b>" in detail
    _open(browser, page, "#e1")
    assert "EPISODE #1" in browser.find_element("id", "detail").text.upper()
    assert browser.get_log("browser") == []


# ---- audit reports ---------------------------------------------------------------------------------------

PUBLISHED_AUDIT = Path(__file__).resolve().parent.parent / "docs" / "audit-smollm2-135m.json"
AUDIT_INJECTION = '</script><img src=x onerror="window.__pwned=1"><b>bold</b>'


@pytest.fixture(scope="module")
def audit_pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The published report's page, and a comparison of it with a second report whose figures differ."""
    from trustee_env.audit import load_report

    folder = tmp_path_factory.mktemp("audit")
    published = load_report(PUBLISHED_AUDIT)
    other = published.model_copy(deep=True)
    other.endpoints["judge"]["model"] = "qwen3-8b"
    other.headline["judge.accuracy"] = 0.8125
    other.headline["tool.contradiction_rate"] = None
    other.notes = [AUDIT_INJECTION]
    other.sections["judge"]["single"]["confusion"]["matrix"][1] = [0, 3, 1]
    single = write_audit_html([published], folder / "audit.html")
    pair = write_audit_html([published, other], folder / "compare.html", labels=["A: 135m", "B: 8b"])
    return {"single": single, "compare": pair, "reports": [published, other]}


def _shown(value: Any, text: str) -> bool:
    """Does the page's text show ``value`` (numbers to 3 decimals, None as a dash)?"""
    if value is None:
        return text == "–"
    if isinstance(value, bool):
        return text == ("yes" if value else "no")
    return abs(float(text) - value) <= 0.0005 + 1e-9


def test_audit_page_embeds_the_report_whole_and_only_its_own_scripts(audit_pages: dict[str, Any]) -> None:
    from trustee_env.viewer_html import read_audit_payload

    for name, count in (("single", 1), ("compare", 2)):
        text = audit_pages[name].read_text(encoding="utf-8")
        assert len(re.findall(r"<script\b", text)) == 2 and text.count("</script>") == 2
        assert "http://" not in text and "https://" not in text and "onerror" not in text
        block = page_data(audit_pages[name])
        assert re.fullmatch(r"[A-Za-z0-9+/=]+", block)
        payload = read_audit_payload(audit_pages[name])
        assert payload["reports"] == [r.model_dump(mode="json") for r in audit_pages["reports"][:count]]
    assert "<title>Trustee audit: smollm2-135m-instruct</title>" in audit_pages["single"].read_text(encoding="utf-8")


def test_audit_payload_takes_one_or_two_reports() -> None:
    from trustee_env.audit import load_report
    from trustee_env.viewer_html import audit_payload

    report = load_report(PUBLISHED_AUDIT)
    assert audit_payload([report])["labels"] == ["A"]
    assert audit_payload([report, report.model_dump(mode="json")])["labels"] == ["A", "B"]
    for wrong in ([], [report] * 3):
        with pytest.raises(ValueError, match="one report or compares two"):
            audit_payload(wrong)


def test_cli_views_an_audit_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trustee_env.audit.report import is_audit_report
    from trustee_env.viewer_html import read_audit_payload

    assert is_audit_report(PUBLISHED_AUDIT) and not is_audit_report(MOCK_CATALOG)
    assert main(["view", str(PUBLISHED_AUDIT)]) == 0
    assert capsys.readouterr().out.startswith("# Trustee audit: smollm2-135m-instruct")
    out = tmp_path / "report.html"
    assert main(["view", str(PUBLISHED_AUDIT), "--html", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    expected = json.loads(PUBLISHED_AUDIT.read_text())["headline"]["judge.accuracy"]
    assert read_audit_payload(out)["reports"][0]["headline"]["judge.accuracy"] == expected
    pair = tmp_path / "compare.html"
    assert main(["audit", "--compare", str(PUBLISHED_AUDIT), str(PUBLISHED_AUDIT), "--html", str(pair)]) == 0
    assert read_audit_payload(pair)["labels"] == ["A: audit-smollm2-135m.json", "B: audit-smollm2-135m.json"]


def _figures(driver: Any) -> dict[str, str]:
    return driver.execute_script(
        "return Object.fromEntries(Array.from(document.querySelectorAll('[data-k]'))"
        ".map(e => [e.dataset.k, e.textContent]))"
    )


def test_audit_page_shows_the_published_reports_figures(browser: Any, audit_pages: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    report = audit_pages["reports"][0]
    browser.get(audit_pages["single"].as_uri())
    _wait_ready(browser)
    assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")] == []
    shown = _figures(browser)
    for name, value in report.headline.items():  # every headline figure, in its role's section
        assert _shown(value, shown[f"r0:headline:{name}"]), (name, value, shown[f"r0:headline:{name}"])
    for role, entry in report.sim_faults.items():
        for key in ("calls", "sim_faults", "sim_fault_rate", "repairs", "cache_hits"):
            assert _shown(entry[key], shown[f"r0:fault:{role}:{key}"]), (role, key)
        assert _shown(entry["sim_fault_rate"], shown[f"r0:faults:{role}:sim_fault_rate"])
    for index, mitigation in enumerate(report.mitigations):
        assert _shown(mitigation.before, shown[f"r0:mitigation:{index}:before"])
        assert _shown(mitigation.after, shown[f"r0:mitigation:{index}:after"])
    judge = report.sections["judge"]
    for view in ("single", "single_capped", "majority", "majority_capped"):
        for i, row in enumerate(judge[view]["confusion"]["matrix"]):
            for j, count in enumerate(row):
                assert shown[f"r0:confusion:{view}:{i}:{j}"] == str(count), (view, i, j)
    for kind, entry in judge["by_class"].items():
        assert _shown(entry["accuracy"], shown[f"r0:class:{kind}:accuracy"])
    signal = report.sections["signal"]
    for agent, entry in signal["agents"].items():
        for key in ("p_reward_1", "mean_reward", "sim_fault_rate"):
            assert _shown(entry[key], shown[f"r0:signal:{agent}:{key}"]), (agent, key)
    for target, met in signal["targets_met"].items():
        assert shown[f"r0:target:{target}"] == ("✓ met" if met else "✗ missed")
    for role, endpoint in report.endpoints.items():
        for key in ("temperature", "top_p", "max_tokens"):
            assert _shown(endpoint[key], shown[f"r0:endpoint:{role}:{key}"])
    assert shown["r0:model"] == "smollm2-135m-instruct" and shown["r0:suite_version"] == report.suite_version
    assert shown["r0:run"] == ("quick" if report.quick else "full")
    cache = report.cache
    assert (
        shown["r0:cache"]
        == f"{cache['mode']} ({cache['entries_before']} entries before, {cache['entries_after']} after)"
    )
    notes = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".note")]
    assert notes == report.notes
    headings = [h.text.lower() for h in browser.find_elements(By.CSS_SELECTOR, "section h3")]
    assert headings == [
        "run",
        "sim faults per role",
        "task generator",
        "user simulator",
        "tool simulator",
        "judge",
        "signal: reference agents",
    ]
    assert browser.get_log("browser") == []


def test_audit_compare_page_shows_both_reports_side_by_side(browser: Any, audit_pages: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    first, second = audit_pages["reports"]
    browser.get(audit_pages["compare"].as_uri())
    _wait_ready(browser)
    shown = _figures(browser)
    for name in first.headline:
        assert _shown(first.headline[name], shown[f"cmp:{name}:0"]), name
        assert _shown(second.headline[name], shown[f"cmp:{name}:1"]), name
    assert shown["cmp:judge.accuracy:1"] == "0.813" and shown["cmp:tool.contradiction_rate:1"] == "–"
    assert shown["r1:confusion:single:1:1"] == "3" and shown["r0:confusion:single:1:1"] == "0"
    assert shown["r1:model"] == "qwen3-8b, smollm2-135m-instruct"
    assert [h.text for h in browser.find_elements(By.CSS_SELECTOR, ".report > h2")] == ["A: 135m", "B: 8b"]
    assert AUDIT_INJECTION in [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".report[data-report='1'] .note")]
    assert browser.execute_script("return window.__pwned") is None
    assert browser.find_elements(By.CSS_SELECTOR, "#content img, #content b") == []
    assert browser.get_log("browser") == []
