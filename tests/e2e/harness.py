"""The browser harness: the dashboard on a free localhost port, driven through Chromium by Playwright.

Used by the browser tests (``tests/e2e``, ``tests/security``) and by the load benchmark
``benchmarks/bench_workflow.py``: one server with ``NBRISK_AUTH=on`` and a throwaway database, then one
or more Playwright browser contexts that sign in and walk through the pages. Every step is timed and
can leave a screenshot under ``test-artifacts/e2e/``. It lives with the tests, not in ``nbrisk_core``:
the library does not depend on Playwright or on a source checkout's ``streamlit_app.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # the source checkout (streamlit_app.py, pages/)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-dev-shm-usage"]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "e2e"
#: how long one step may wait for the page to show what it expects (ms); the 2-core CI is slow
STEP_TIMEOUT_MS = 90_000


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is absent (apt-get install -y chromium; .ci/system-packages.sh installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright for Python is not installed"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AppServer:
    """A running ``streamlit run streamlit_app.py`` with sign-in on and its own database."""

    url: str
    database_url: str
    process: subprocess.Popen
    workdir: Path
    log_path: Path

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def start_server(users: list[tuple[str, str, str]], *, data_dir: Path | None = None,
                 database_url: str | None = None, timeout_s: float = 120.0, env: dict | None = None,
                 auth: str | None = "on") -> AppServer:
    """Start the app (``NBRISK_AUTH=on``) with ``users`` = [(name, password, role)] in a fresh DB.

    ``auth`` is the server's ``NBRISK_AUTH``; None starts it without one (the default the app applies).
    """
    workdir = Path(tempfile.mkdtemp(prefix="nbrisk-e2e-"))
    database_url = database_url or f"sqlite:///{workdir / 'nbrisk.db'}"
    from nbrisk_core.store import users as store_users
    from nbrisk_core.store.db import make_engine, migrate

    engine = make_engine(database_url)
    migrate(engine)
    for name, password, role in users:
        store_users.add_user(engine, name, password, role, by="e2e")
    engine.dispose()

    port = free_port()
    env = {"NBRISK_HOME": str(REPO_ROOT), **os.environ, **(env or {}), "NBRISK_AUTH": auth,
           "NBRISK_DATABASE_URL": database_url,
           "NBRISK_DATA_DIR": str(data_dir or REPO_ROOT / "data" / "demo"),
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    env = {k: v for k, v in env.items() if v is not None}
    streamlit = Path(sys.executable).parent / "streamlit"
    log_path = workdir / "server.log"
    log = open(log_path, "wb")
    process = subprocess.Popen([str(streamlit), "run", "streamlit_app.py", "--server.port", str(port),
                                "--server.address", "127.0.0.1", "--server.headless", "true"],
                               cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    server = AppServer(url, database_url, process, workdir, log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return server
        time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"streamlit did not answer on {url} within {timeout_s:.0f} s:\n{server.log_tail()}")


def stop_server(server: AppServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=5)
    # the server's log (tracebacks the browser only shows redacted) stays with the screenshots
    with contextlib.suppress(OSError):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(server.log_path, ARTIFACTS / f"server-{server.url.rsplit(':', 1)[-1]}.log")
    shutil.rmtree(server.workdir, ignore_errors=True)


@contextlib.contextmanager
def browser_context(playwright, *, viewport=(1400, 1000)):
    """A headless Chromium context with a fresh user-data directory (removed afterwards)."""
    user_data = tempfile.mkdtemp(prefix="nbrisk-chromium-")
    context = playwright.chromium.launch_persistent_context(
        user_data, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
        viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    from playwright.sync_api import expect

    expect.set_options(timeout=STEP_TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()
        shutil.rmtree(user_data, ignore_errors=True)


@dataclass
class Flow:
    """One browser session walking through the app: timed steps, screenshots, the errors it saw."""

    page: object
    base_url: str
    name: str = "flow"
    screenshots: bool = True
    timings: dict[str, float] = field(default_factory=dict)
    #: how often a step had to be done again, by step (see :meth:`sign_in`)
    retries: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        self.console: list[str] = []  # the browser's console (connection losses show there)
        with contextlib.suppress(Exception):
            self.page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"[:300]))
            self.page.on("websocket", self._log_websocket)

    def _log_websocket(self, ws) -> None:
        """Opened and closed websockets go to the console record: a reconnect starts the session afresh."""
        self.console.append(f"websocket opened {ws.url} at {time.strftime('%H:%M:%S')}")
        ws.on("close", lambda ws: self.console.append(f"websocket closed {ws.url} at {time.strftime('%H:%M:%S')}"))

    def keep_console(self, title: str) -> None:
        """Write the browser console so far next to the screenshots (a failed or retried step)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"{self.name}_{title}_console.txt").write_text("\n".join(self.console[-200:]) + "\n")

    def step(self, title: str):
        return _Step(self, title)

    def shot(self, title: str, *, force: bool = False) -> None:
        """Screenshot of the whole page; ``force`` takes it even without ``screenshots`` (failed steps)."""
        if self.screenshots or force:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            self.page.wait_for_timeout(400)  # let the last elements paint (they arrive after the run ends)
            self.page.screenshot(path=str(ARTIFACTS / f"{self.name}_{len(self.timings):02d}_{title}.png"),
                                 full_page=True)

    # ----------------------------------------------------------------- waiting helpers
    def wait_idle(self) -> None:
        """Wait until Streamlit has finished the current run (no running indicator)."""
        page = self.page
        page.wait_for_load_state("domcontentloaded")
        page.wait_for_function(
            "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
            " && document.querySelector('[data-testid=\"stApp\"]')"
            " && document.querySelector('[data-testid=\"stApp\"]').getAttribute('data-test-script-state')"
            " !== 'running'", timeout=STEP_TIMEOUT_MS)

    def assert_no_exception(self) -> None:
        """Fail when the page shows a Streamlit exception box."""
        boxes = self.page.locator('[data-testid="stException"]')
        if boxes.count():
            raise AssertionError(f"{self.name}: the page shows an exception: {boxes.first.inner_text()[:500]}")

    # ----------------------------------------------------------------- the steps
    def sign_in(self, username: str, password: str, attempts: int = 3) -> None:
        """Sign in through the form; a form that comes back empty is filled in again (``retries``).

        Under load (ten browsers on two cores) a submitted form was seen to come back empty, with no
        error and no sign-in: the session had been started afresh. A user would type again, so the
        flow does too, and the benchmark reports how often it had to.
        """
        from playwright.sync_api import TimeoutError as PlaywrightTimeout
        from playwright.sync_api import expect

        page = self.page
        page.goto(self.base_url)
        signed_in = page.get_by_text(f"Signed in as {username}")
        refused = page.locator('[data-testid="stAlert"]')
        for attempt in range(1, attempts + 1):
            expect(page.get_by_role("button", name="Sign in")).to_be_visible()
            # the form is typed into only once its run has ended, and the values are checked before the
            # click: a field filled while the form was still being drawn could be sent empty
            self.wait_idle()
            for name, value in (("User name", username), ("Password", password)):
                box = page.get_by_role("textbox", name=name)
                box.fill(value)
                expect(box).to_have_value(value)
            page.get_by_role("button", name="Sign in").click()
            try:
                expect(signed_in.or_(refused).first).to_be_visible(
                    timeout=STEP_TIMEOUT_MS if attempt == attempts else STEP_TIMEOUT_MS // attempts)
            except (AssertionError, PlaywrightTimeout):
                form_back_empty = (page.get_by_role("button", name="Sign in").is_visible()
                                   and page.get_by_role("textbox", name="User name").input_value() == "")
                if attempt == attempts or not form_back_empty:
                    raise
                self.shot(f"sign_in_retry{attempt}", force=True)
                self.keep_console(f"sign_in_retry{attempt}")
                self.retries["sign_in"] = self.retries.get("sign_in", 0) + 1
                continue
            break
        if not signed_in.is_visible():
            raise AssertionError(f"{self.name}: sign-in refused: {refused.first.inner_text()[:300]}")
        self.wait_idle()
        self.assert_no_exception()

    def go_to(self, title: str, expect_heading: str | None = None) -> None:
        from playwright.sync_api import expect

        page = self.page
        page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title, exact=True).click()
        expect(page.get_by_role("heading", name=expect_heading or title).first).to_be_visible()
        self.wait_idle()
        self.assert_no_exception()

    def sign_out(self) -> None:
        from playwright.sync_api import expect

        page = self.page
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        self.wait_idle()


class _Step:
    def __init__(self, flow: Flow, title: str):
        self.flow, self.title = flow, title

    def __enter__(self):
        self.started = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.flow.timings[self.title] = time.perf_counter() - self.started
        with contextlib.suppress(Exception):
            # a failed step always leaves its screenshot: it is the one that explains the failure
            self.flow.shot(self.title if exc_type is None else f"{self.title}_FAILED", force=exc_type is not None)
            if exc_type is not None:
                self.flow.keep_console(f"{self.title}_FAILED")
        return False


# ===================================================================== the clinician's flow
def models_missing_reason() -> str | None:
    from nbrisk_core import config

    if not (config.models_dir() / "swin_art_demo.safetensors").exists():
        return f"no shipped Swin-ART model in {config.models_dir()} (swin_art_demo.safetensors)"
    return None


def make_demo_zip(cohort_dir: Path, patient_id: str, out_dir: Path) -> Path:
    """The three-phase DICOM study of a demo patient as one zip (what a clinician uploads)."""
    from nbrisk_core.demo import write_study

    paths = write_study(cohort_dir, patient_id, out_dir, as_zip=True)
    zips = [p for p in paths if Path(p).suffix == ".zip"]
    if not zips:
        raise RuntimeError(f"write_study wrote no zip for {patient_id}")
    return Path(zips[0])


def step_upload_case(flow: Flow, study_zip: Path | list[Path]) -> None:
    """Case page: drop the study zip (read on the drop), confirm a slice per phase, send it to the Risk page.

    ``study_zip`` may also be a list of files (the DICOM files themselves) to upload instead.
    """
    import re

    from playwright.sync_api import expect

    flow.go_to("Case")
    page = flow.page
    expect(page.get_by_text("1 · Study")).to_be_visible()
    dropzone = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
    label = page.locator('[data-testid="stRadio"]').get_by_text("Upload", exact=True)
    # the source choice (or the uploader) is drawn after the heading: wait for one of them
    expect(page.locator('[data-testid="stRadio"]').or_(page.locator('[data-testid="stFileUploader"]')).first
           ).to_be_visible()
    for _ in range(5):
        # a click that lands while the page is still hydrating can be lost under load: retry it
        if dropzone.count() or not label.count():
            break
        label.click()
        try:
            dropzone.first.wait_for(state="attached", timeout=STEP_TIMEOUT_MS // 5)
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: click again
            continue
    expect(dropzone).to_have_count(1)
    files = [str(p) for p in study_zip] if isinstance(study_zip, (list, tuple)) else str(study_zip)
    # the page reads the files as soon as they are dropped (no "Read" button since issue 21)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(files)
    section = page.get_by_text("3 · Max-area slice per phase")
    nothing = page.get_by_text("No image series could be loaded from this study.")
    expect(section.or_(nothing)).to_be_visible()
    if nothing.count():
        raise AssertionError("the Case page loaded no image series from the uploaded study "
                             f"({'zip' if isinstance(files, str) else f'{len(files)} files'})")
    flow.wait_idle()
    flow.assert_no_exception()
    for phase in ("NC", "ART", "PV"):
        tab = page.get_by_role("tab", name=re.compile(f"^{phase} ·"))
        if tab.count() == 0:
            continue
        tab.first.click()
        confirm = page.get_by_role("button", name=re.compile(f"^Confirm slice \\d+ for {phase}$"))
        expect(confirm).to_be_visible()
        confirm.click()
        expect(page.get_by_text(re.compile(f"^{phase}\\b.*slice \\d+ · z")).first).to_be_visible()
        flow.wait_idle()
    page.get_by_role("button", name="Send to Risk").click()
    expect(page.get_by_role("heading", name="Risk").first).to_be_visible()
    flow.wait_idle()
    flow.assert_no_exception()


def step_risk(flow: Flow, *, demo_patient: str | None) -> None:
    """Risk page: p(high risk) per model and the Grad-CAM overlays."""
    from playwright.sync_api import expect

    page = flow.page
    if demo_patient is not None or page.get_by_role("heading", name="Risk").count() == 0:
        flow.go_to("Risk")
    if demo_patient is not None:
        page.get_by_text("Demo patient", exact=True).first.click()
        flow.wait_idle()
        box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Demo patient").first
        box.click()
        page.get_by_role("option", name=demo_patient, exact=True).click()
        flow.wait_idle()
    expect(page.get_by_text("Where the model looked (Grad-CAM)")).to_be_visible()
    expect(page.locator('[data-testid="stImage"]').first).to_be_visible()
    flow.wait_idle()
    flow.assert_no_exception()


#: labs a clinician types on the Prognosis page (the rest is left empty and imputed)
LAB_ENTRIES: tuple[tuple[str, str], ...] = (("Age at diagnosis", "36"), ("Neuron-specific enolase (NSE)", "120"),
                                             ("Lactate dehydrogenase (LDH)", "610"))


def step_prognosis(flow: Flow) -> None:
    """Prognosis page: predict survival from the labs (the form as the page pre-fills it).

    The model is the demo's frozen bundle (``make bundle``), not a fit at start: the page's caption says so.
    """
    import re

    from playwright.sync_api import expect

    flow.go_to("Prognosis")
    page = flow.page
    source = page.get_by_text(re.compile(r"frozen bundle \S+ \(SHA-256 [0-9a-f]{12}\)"))
    expect(source, "the Prognosis page fitted the model instead of loading the demo's frozen bundle "
                   "(models/prognosis_demo: make bundle)").to_be_visible()
    fill = page.get_by_role("button", name="Fill the form with this demo patient's values")
    if fill.count():
        fill.click()
        flow.wait_idle()
    for label, value in LAB_ENTRIES:
        box = page.get_by_role("textbox", name=label, exact=True)  # text, parsed strictly by the core
        if box.count() == 1 and not box.input_value():
            box.fill(value)
    page.get_by_role("button", name="Predict survival").click()
    expect(page.get_by_text("MLRS group")).to_be_visible()
    flow.wait_idle()
    flow.assert_no_exception()
    # the dynamic nomogram (issue 26): the patient's total points, then a scenario with a higher MLRS
    expect(page.get_by_role("heading", name="Nomogram"), "no nomogram on the Prognosis page (a bundle "
           "without one: rebuild it with make bundle)").to_be_visible()
    expect(page.get_by_role("paragraph").filter(has_text="Total points")).to_be_visible()   # the metric
    mlrs = page.get_by_role("spinbutton", name="MLRS", exact=True)
    mlrs.fill(str(float(mlrs.input_value()) + 1.0))
    page.get_by_role("button", name="Compare scenario").click()
    expect(page.get_by_text("Scenario changes: MLRS.")).to_be_visible()
    flow.wait_idle()
    flow.assert_no_exception()


def step_save(flow: Flow, label: str) -> str:
    """Save case box (on the Prognosis page): label, notes, Save; returns the new case id."""
    import re

    from playwright.sync_api import expect

    page = flow.page
    button = page.get_by_role("button", name="Save case")
    page.get_by_role("textbox", name=re.compile("^Case label")).fill(label)
    page.get_by_role("textbox", name="Notes").fill(f"e2e review of {label}")
    button.click()
    message = page.get_by_text(re.compile(r"Saved as case C[0-9A-F]{10}"))
    expect(message).to_be_visible()
    case_uid = re.search(r"C[0-9A-F]{10}", message.inner_text()).group(0)
    flow.wait_idle()
    return case_uid


def step_saved_cases(flow: Flow, case_uid: str, label: str) -> bytes:
    """Saved cases page: the case is listed and open in this session; download its PDF (returns its bytes)."""
    from playwright.sync_api import expect

    flow.go_to("Saved cases")
    page = flow.page
    expect(page.get_by_text(f"Case {case_uid} ({label}) is open in this session")).to_be_visible()
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Case").first
    box.click()
    # type to filter: the drop-down renders only the options in view, and with many saved cases
    # (ten sessions saving at once) this session's case may be far down the list
    page.keyboard.type(case_uid)
    page.get_by_role("option", name=__import__("re").compile(f"^{case_uid}")).click()
    # the download buttons of the chosen case, not those of the case shown before the choice: a click on
    # a button of the previous run asks for a file the new run has already withdrawn
    expect(page.get_by_text(f"Downloads of case {case_uid}")).to_be_visible()
    flow.wait_idle()
    page.get_by_role("button", name="Make PDF").click()
    download_button = page.get_by_role("button", name="Download PDF")
    expect(download_button).to_be_visible()
    flow.wait_idle()
    flow.assert_no_exception()
    with page.expect_download() as download_info:
        download_button.click()
    download = download_info.value
    data = Path(download.path()).read_bytes()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{flow.name}_{case_uid}.pdf").write_bytes(data)
    flow.wait_idle()
    return data


def step_reopen(flow: Flow, case_uid: str) -> None:
    """Open the saved case again: the app goes to the Risk page with the stored result."""
    from playwright.sync_api import expect

    page = flow.page
    page.get_by_role("button", name="Open case").click()
    expect(page.get_by_role("heading", name="Risk").first).to_be_visible()
    flow.wait_idle()
    flow.assert_no_exception()


def clinician_flow(flow: Flow, username: str, password: str, *, label: str, demo_patient: str,
                   study_zip: Path | list[Path] | None = None) -> dict:
    """Walk through the whole workflow; any step that fails raises (nothing is skipped).

    Returns ``case_uid`` (the saved case), ``pdf_bytes`` (size of the downloaded report), ``steps`` (the
    steps done, in order), ``timings`` and ``retries``. Without ``study_zip`` the Risk page's demo patient
    stands in for the upload.
    """
    with flow.step("sign_in"):
        flow.sign_in(username, password)
    if study_zip is not None:
        with flow.step("case_upload"):
            step_upload_case(flow, study_zip)
    with flow.step("risk"):
        step_risk(flow, demo_patient=None if study_zip is not None else demo_patient)
    with flow.step("prognosis"):
        step_prognosis(flow)
    with flow.step("save_case"):
        case_uid = step_save(flow, label)
    with flow.step("saved_cases"):
        pdf = step_saved_cases(flow, case_uid, label)
    if not pdf.startswith(b"%PDF"):
        raise AssertionError(f"{flow.name}: the downloaded report is not a PDF")
    with flow.step("reopen"):
        step_reopen(flow, case_uid)
    with flow.step("sign_out"):
        flow.sign_out()
    return {"case_uid": case_uid, "pdf_bytes": len(pdf), "steps": list(flow.timings),
            "timings": dict(flow.timings), "retries": dict(flow.retries)}
