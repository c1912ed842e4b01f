"""What the web workspace's tests share: hostile and long notes, a live uvicorn server in a thread, and a
headless Debian chromium driven by Selenium (installed by scripts/install_browser.sh)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
# markup a note may carry: rendered as text, it must never run
HOSTILE_NOTE = ("Assessment: type 2 diabetes mellitus with hyperglycemia and essential hypertension.\n"
                "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">\n"
                "Plan: continue metformin 500 mg twice daily and lisinopril 10 mg daily; gout of the right knee "
                "is quiet.\n")


def long_note(chars: int = 5000) -> str:
    """A real-looking note of exactly `chars` characters: the two ACI-Bench examples, then a follow-up."""
    text = "\n\n".join((ROOT / "examples" / n).read_text(encoding="utf-8") for n in
                       ("aci_bench_D2N068.txt", "aci_bench_D2N069.txt"))
    follow = ("\n\nFOLLOW-UP\nThe patient has chronic kidney disease stage 3 and atrial fibrillation on apixaban. "
              "She reports heartburn from gastroesophageal reflux disease, treated with omeprazole. Asthma is "
              "controlled with salbutamol as needed. Hyperlipidemia on atorvastatin 40 mg. ")
    while len(text) < chars:
        text += follow
    return text[:chars]


def fhir_codes(bundle: dict[str, Any]) -> set[str]:
    """The codes of a FHIR bundle's resources (Condition.code, MedicationStatement.medicationCodeableConcept)."""
    out = set()
    for entry in bundle["entry"]:
        res = entry["resource"]
        concept = res.get("code") or res.get("medicationCodeableConcept")
        out.add(concept["coding"][0]["code"])
    return out


class LiveServer:
    """uvicorn serving an app on a free loopback port, in a thread of the test process."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        from medcoder.llm.serving import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, access_log=False,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def chromium_paths() -> tuple[str, str]:
    """Debian's chromium and its driver; in CI their absence fails the test (the set-up installs them)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are missing: scripts/install_browser.sh installs them")
        pytest.skip("chromium / chromedriver not installed (scripts/install_browser.sh)")
    return browser, driver


@contextmanager
def chrome(download_dir: Path) -> Iterator[Any]:
    """A headless chromium (1400x1000) that saves downloads into `download_dir`."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--disable-gpu", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def screenshot_dir() -> Path:
    """Where the README's screenshots are written (docs/screenshots, or MEDCODER_SCREENSHOTS)."""
    path = Path(os.environ.get("MEDCODER_SCREENSHOTS") or ROOT / "docs" / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
