"""The dashboard end to end in a real browser: Debian's headless chromium driven by Playwright, against
a real `tunelab serve` with an API key (one server and one browser tab for the module; the tests run
in file order and build on each other, as a person would: key, upload, job, playground, models,
monitoring). Every request the page makes is recorded; none may go anywhere but the server.

Screenshots of every page (whole page) at 1280×800 and 390×844 go to $TUNELAB_UI_SCREENSHOTS, else
to a temporary folder; the README shows two of them (docs/img/ui/job-1280.png and playground-390.png,
from `TUNELAB_UI_SCREENSHOTS=/tmp/shots pytest tests/server/ui/test_dashboard.py`)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.server.conftest import LiveServer

sync_api = pytest.importorskip("playwright.sync_api")  # the test extras install it
expect = sync_api.expect
pytestmark = pytest.mark.slow  # a server, a worker that trains, a model process and a browser

CHROMIUM = "/usr/bin/chromium"
KEY = "sk-dashboard-key"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--no-first-run", "--disable-quic", "--disable-sync", "--disable-dev-shm-usage"]
SIZES = {"1280": {"width": 1280, "height": 800}, "390": {"width": 390, "height": 844}}
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
WORDS = {"1": "awful terrible", "2": "bad poor", "3": "okay fine", "4": "good love", "5": "great perfect"}


def raw_csv(path: Path, n: int = 60) -> Path:
    """Classification data as people write it: CSV, no separator, labels without the leading space."""
    lines = ["prompt,completion"]
    for i in range(n):
        label = str(i % 5 + 1)
        lines.append(f"\"{WORDS[label]} dress {['small', 'large', 'fits'][i % 3]} {i}\",{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("dashboard")
    live = LiveServer(root / "home", api_key=KEY)
    live.origin = f"http://127.0.0.1:{live.port}"
    live.root = root
    yield live
    live.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    wanted = os.environ.get("TUNELAB_UI_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("ui-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: scripts/setup.sh test installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium, or `bash scripts/setup.sh test`)")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=LAUNCH_ARGS, viewport=SIZES["1280"], color_scheme="light", service_workers="block")
        context.requests = []
        context.on("request", lambda request: context.requests.append(request.url))
        context.page_errors = []
        yield context
        context.close()


@pytest.fixture(scope="module")
def page(browser):
    page = browser.pages[0] if browser.pages else browser.new_page()
    page.on("pageerror", lambda exc: browser.page_errors.append(str(exc)))
    page.set_default_timeout(30_000)
    return page


@pytest.fixture(scope="module")
def state():
    """What one test leaves for the next (the job, the model)."""
    return {}


def open_page(page, server, path: str):
    page.goto(server.origin + path)
    page.wait_for_selector("body[data-ready]", state="attached")


def wait_until(page, script: str, timeout: float = 30.0) -> None:
    """page.wait_for_function evaluates its predicate with eval(), which the page's CSP forbids;
    page.evaluate does not."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(script):
        assert time.monotonic() < deadline, f"still false after {timeout} s: {script}"
        time.sleep(0.1)


def api(server, method: str, path: str, **kwargs):
    response = httpx.request(method, server.origin + path, headers={"Authorization": f"Bearer {KEY}"}, timeout=60,
                             **kwargs)
    response.raise_for_status()
    return response.json()


def test_wrong_key_gets_a_clear_message_then_the_right_one_works(page, server):
    page.goto(server.origin + "/ui")
    panel = page.locator("#key-panel")
    panel.wait_for(state="visible")
    assert "didn't provide an API key" in page.locator("#key-message").inner_text()
    assert page.locator("#key-input").evaluate("el => el === document.activeElement")  # focus goes to the field

    page.keyboard.type("sk-not-the-key")
    page.keyboard.press("Enter")
    expect(page.locator("#key-message")).to_contain_text("refused")
    text = page.locator("#key-message").inner_text()
    assert "The server refused this key" in text and "Incorrect API key provided: sk-****" in text
    assert "sk-not-the-key" not in text  # the key itself is never shown

    page.locator("#key-input").fill(KEY)
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-ready]", state="attached")
    assert panel.is_hidden()
    assert "No jobs yet" in page.locator("#jobs-body").inner_text()
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("sessionStorage.getItem('tunelab.apiKey')") == KEY


def test_fine_tune_from_the_browser(page, server, state, tiny_models):
    open_page(page, server, "/ui/new")
    page.locator("#train-file").set_input_files(str(raw_csv(server.root / "reviews.csv")))
    page.locator("#upload-button").click()
    page.wait_for_selector("#class-table")
    report = page.locator("#report").inner_text()
    assert "60 rows read as CSV" in report
    assert "Add a suffix separator" in report and "whitespace character to the beginning" in report
    assert page.locator("#class-table tbody tr").count() == 5
    assert "␣1" in page.locator("#class-table").inner_text()
    assert "48 training rows, 12 validation rows, stratified" in report
    assert page.locator("#validation").input_value() == "split"

    page.locator("#base-model").fill(str(tiny_models.encoder))
    page.locator("#n-epochs").fill("2")
    page.locator("#lr-mult").fill("50")
    page.locator("#suffix").fill("ui")
    page.locator("#start-job").click()
    page.wait_for_url("**/ui/jobs/*")
    job_id = page.locator("#job").get_attribute("data-job-id")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=150_000)

    job = api(server, "GET", f"/v1/fine_tuning/jobs/{job_id}")
    assert job["status"] == "succeeded" and job["hyperparameters"]["n_epochs"] == 2
    files = {f["id"]: f for f in api(server, "GET", "/v1/files")["data"]}
    assert files[job["training_file"]]["filename"] == "reviews_prepared_train.jsonl"
    assert files[job["training_file"]]["n_rows"] == 48 and files[job["validation_file"]]["n_rows"] == 12
    assert job["classification"]["compute_classification_metrics"]

    page.wait_for_selector("#model-id")
    assert page.locator("#model-id").inner_text() == job["fine_tuned_model"]
    assert job["fine_tuned_model"] in page.locator("#snippet").inner_text()
    assert "logprobs=5" in page.locator("#snippet").inner_text()
    for chart, series in (("#chart-loss", "training loss"), ("#chart-loss", "validation loss"),
                          ("#chart-acc", "validation accuracy")):
        path = page.locator(f"{chart} path.series[data-series='{series}']")
        assert int(path.get_attribute("data-points")) >= 2, (chart, series)
        assert path.get_attribute("d").count("L") >= 1
    # the per-step curve watched while it ran stays beside the per-epoch whole-file accuracy
    sampled = page.locator("#chart-acc path.series[data-series='validation accuracy (sample, by step)']")
    assert int(sampled.get_attribute("data-points")) >= 2
    assert page.locator("#checkpoints tr").count() >= 1
    # each epoch's row shows its whole-validation-file scores, as `fine_tunes.checkpoints --table` does
    newest = api(server, "GET", f"/v1/fine_tuning/jobs/{job_id}/checkpoints")["data"][0]
    row = page.locator("#checkpoints tr", has=page.locator("td", has_text=newest["fine_tuned_model_checkpoint"]))
    cells = row.locator("td").all_inner_texts()
    assert float(cells[3]) == pytest.approx(newest["all_metrics"]["selection_accuracy"], abs=1e-4)
    assert float(cells[4]) == pytest.approx(newest["all_metrics"]["selection_score"], abs=1e-4)
    assert "Job succeeded." in page.locator("#events").inner_text()
    summary = page.locator("#job-summary").inner_text()  # the uploaded names, not only the ids
    assert "reviews_prepared_train.jsonl" in summary and job["training_file"] in summary
    state.update(job_id=job_id, model=job["fine_tuned_model"], valid_file=job["validation_file"],
                 train_file=job["training_file"])


def shown_distribution(page) -> dict[str, float]:
    rows = page.locator("#first-token .bar-row")
    return {rows.nth(i).get_attribute("data-token"): float(rows.nth(i).get_attribute("data-logprob"))
            for i in range(rows.count())}


def test_playground_probabilities_are_those_of_completions(page, server, state):
    model = state["model"]
    open_page(page, server, f"/ui/playground?model={model}")
    assert page.locator("#play-model").input_value() == model
    assert page.locator("#separator-shown").inner_text() == r"\n\n###\n\n"
    page.locator("#play-prompt").fill("great perfect dress fits")
    page.locator("#play-prompt").press("Control+Enter")  # keyboard only
    page.wait_for_selector("#first-token")

    shown = shown_distribution(page)
    response = api(server, "POST", "/v1/completions", json={
        "model": model, "prompt": "great perfect dress fits\n\n###\n\n", "max_tokens": 1, "temperature": 0,
        "logprobs": 5})
    top = response["choices"][0]["logprobs"]["top_logprobs"][0]
    assert set(shown) == set(top) == {" 1", " 2", " 3", " 4", " 5"}
    for token, logprob in top.items():
        assert abs(math.exp(shown[token]) - math.exp(logprob)) < 1e-6
        assert abs(shown[token] - logprob) < 1e-6
    bars = page.locator("#first-token").inner_text()
    assert "␣" in bars  # leading spaces made visible
    assert page.locator("#answer-tokens").inner_text().strip() == "␣" + response["choices"][0]["text"].strip()
    assert page.locator("#prompt-echo").inner_text() == "great perfect dress fits\n\n###\n\n"


def test_a_script_in_the_prompt_is_only_text(page, server, state):
    open_page(page, server, f"/ui/playground?model={state['model']}")
    page.locator("#play-prompt").fill(XSS)
    page.locator("#play-submit").click()
    page.wait_for_selector("#first-token")
    assert page.locator("#prompt-echo").inner_text().startswith(XSS)
    assert page.locator("#answer script, #answer img").count() == 0
    assert page.evaluate("window.__xss") is None

    # the same prompt, logged and shown again in the review queue, is text there too
    open_page(page, server, f"/ui/monitor?model={state['model']}")
    page.wait_for_selector("#queue-table")
    assert XSS in page.locator("#queue-table").inner_text()
    assert page.locator("#queue script, #queue img").count() == 0
    assert page.evaluate("window.__xss") is None
    assert page.locator("#windows-table").count() == 1
    report = api(server, "GET", f"/ui/api/monitor?model={state['model']}&window=1h")
    assert report["windows"][0]["enough_rows"] is False  # a few playground prompts: said, not left to guess
    expect(page.locator("#windows-table")).to_contain_text("Too few predictions to judge (fewer than 30)")
    assert "label_drift:" not in page.locator("#windows-table").inner_text()  # checks in words
    before = api(server, "GET", f"/ui/api/monitor?model={state['model']}&window=1h")["feedback"]
    page.locator("#queue-table tbody tr").first.locator("button").first.click()
    expect(page.locator("#queue-table")).to_contain_text("recorded")
    # the windows above count it without another click on Show
    expect(page.locator("#windows-table caption")).to_contain_text(f"; {before + 1} with feedback")


def test_completion_model_tokens_are_coloured_with_alternatives(page, server, state, tiny_models):
    """A free-form model (tiny random-weight decoder, registered in the server's store): each
    generated token coloured by its probability, the alternatives on hover and on focus."""
    from tunelab.store import Store

    store = Store(home=server.home)
    model = tiny_models.register(store, "lm", name="dec", suffix="gen")
    store.engine.dispose()
    open_page(page, server, f"/ui/playground?model={model}")
    assert page.locator("#add-separator").is_disabled()  # no training file: no separator known
    page.locator("#play-prompt").fill("great good love")
    page.locator("#max-tokens").fill("3")
    page.locator("#play-submit").click()
    page.wait_for_selector("#answer-tokens")
    tokens = page.locator("#answer-tokens .tok")
    response = api(server, "POST", "/v1/completions", json={"model": model, "prompt": "great good love", "max_tokens": 3,
                                                           "temperature": 0, "logprobs": 5})
    logprobs = response["choices"][0]["logprobs"]
    assert tokens.count() == len(logprobs["tokens"]) >= 1
    for i, logprob in enumerate(logprobs["token_logprobs"]):
        assert abs(float(tokens.nth(i).get_attribute("data-p")) - math.exp(logprob)) < 1e-6
        assert "·" in tokens.nth(i).get_attribute("title") or len(logprobs["top_logprobs"][i]) == 1
        assert tokens.nth(i).evaluate("el => getComputedStyle(el).backgroundColor") != "rgba(0, 0, 0, 0)"
    assert set(shown_distribution(page)) == set(logprobs["top_logprobs"][0])
    tokens.first.focus()  # keyboard users reach the alternatives too
    assert "alternatives" in tokens.first.get_attribute("aria-label")


def test_cancel_from_the_job_page(page, server, state):
    job = api(server, "POST", "/v1/fine_tuning/jobs", json={
        "model": state["model"], "training_file": state["train_file"], "hyperparameters": {"n_epochs": 40}})
    open_page(page, server, f"/ui/jobs/{job['id']}")
    assert "Continued from" in page.locator("#lineage").inner_text()  # trained on the first job's model
    # named for a screen reader, and the events' scrolling list reachable by keyboard (axe-core's rules)
    assert page.locator("#progress [role=progressbar]").get_attribute("aria-label") == "Progress"
    assert page.locator("#events").get_attribute("tabindex") == "0"
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#cancel-job").click()
    expect(page.locator("#job-status")).to_have_text("cancelled", timeout=60_000)
    assert page.locator("#cancel-job").is_hidden()
    expect(page.locator("#status")).not_to_contain_text("Cancellation requested")  # not left behind
    assert api(server, "GET", f"/v1/fine_tuning/jobs/{job['id']}")["status"] == "cancelled"


def test_models_page_evaluates_and_compares(page, server, state):
    open_page(page, server, "/ui/models")
    page.locator("#test-file").select_option(state["valid_file"])
    page.locator("#base-file").select_option(state["train_file"])
    page.locator(f"button[data-model='{state['model']}']").click()
    page.wait_for_selector(".report img")
    wait_until(page, "[...document.querySelectorAll('.report img')].every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator(".report img").count() == 3
    # 5 labels: the rare-class recall covers all of them, and says so (not "the 10 rarest")
    assert "Recall of all 5 classes (mean)" in page.locator(".report").first.inner_text()
    page.locator(f"input.pick[value='{state['model']}']").check()
    page.locator("#compare-button").click()
    page.wait_for_selector("#compare-table")
    table = page.locator("#compare-table").inner_text()
    assert "accuracy" in table and "majority" in table and "tf-idf" in table
    assert page.locator("#compare-table thead th").count() == 4  # metric, the model, two baselines
    # cells read as in the CLI's table: the price in dollars, counts with separators
    price = page.locator("#compare-table tr", has=page.locator("th", has_text="ada-equivalent price")).locator("td")
    assert price.first.inner_text().startswith("$0.0")


def test_every_page_at_both_widths_in_light_and_dark(page, server, state, shots):
    pages = {"jobs": "/ui", "job": f"/ui/jobs/{state['job_id']}", "new": "/ui/new", "models": "/ui/models",
             "playground": f"/ui/playground?model={state['model']}", "monitor": f"/ui/monitor?model={state['model']}"}
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        for name, path in pages.items():
            open_page(page, server, path)
            if name == "job":
                page.wait_for_selector("#chart-loss svg")
            if name == "playground":
                page.locator("#play-prompt").fill("great perfect dress fits")
                page.locator("#play-submit").click()
                page.wait_for_selector("#first-token")
            if name == "models":
                page.wait_for_selector(".report img")
            if name == "new":
                page.locator("#train-file").set_input_files(str(server.root / "reviews.csv"))
                page.locator("#upload-button").click()
                page.wait_for_selector("#class-table")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{name} is wider than the {size}px screen by {overflow}px"
            if name == "jobs":  # each job a block on a phone: no list scrolled sideways, ids on one line
                assert page.evaluate("(w => w.scrollWidth <= w.clientWidth)(document.querySelector('#jobs-table').parentElement)")
            page.screenshot(path=str(shots / f"{name}-{size}.png"), full_page=True)
    page.set_viewport_size(SIZES["1280"])
    colors = {}
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        open_page(page, server, f"/ui/jobs/{state['job_id']}")
        colors[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.wait_for_selector("#chart-loss svg")
    page.screenshot(path=str(shots / "job-1280-dark.png"), full_page=True)
    page.emulate_media(color_scheme="light")
    assert colors["light"] != colors["dark"]
    assert len(list(shots.glob("*.png"))) >= 13


def test_keyboard_reaches_the_navigation(page, server):
    open_page(page, server, "/ui")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Jobs"


def test_a_missing_job_a_wrong_address_and_a_server_gone_are_said_in_words(page, server):
    page.goto(server.origin + "/ui")
    page.evaluate(f"sessionStorage.setItem('tunelab.apiKey', '{KEY}')")  # as the first test left it
    open_page(page, server, "/ui/jobs/ftjob-0000000000000000000000ff")  # a deep link to no job
    expect(page.locator("#job")).to_contain_text("No such fine-tuning job: ftjob-0000000000000000000000ff")
    assert page.locator("#job-status").count() == 0 and page.locator("#job a[href='/ui']").count() == 1
    open_page(page, server, "/ui/job/ftjob-0000000000000000000000ff")  # no such page: a page, not JSON
    assert page.locator("h1").inner_text() == "Page not found"
    page.locator("#key-button").click()  # opened on purpose, the key panel closes with Escape, key kept
    page.locator("#key-panel").wait_for(state="visible")
    page.keyboard.press("Escape")
    assert page.locator("#key-panel").is_hidden()
    assert page.evaluate("sessionStorage.getItem('tunelab.apiKey')") == KEY

    # the server stops answering while the list is open, then comes back: the page says so, then recovers
    page.route("**/v1/fine_tuning/jobs**", lambda route: route.abort())
    open_page(page, server, "/ui")
    expect(page.locator("#status")).to_contain_text("The server did not answer")
    assert "Trying again every 5 s" in page.locator("#status").inner_text()
    page.unroute("**/v1/fine_tuning/jobs**")
    expect(page.locator("#jobs-body")).not_to_contain_text("Loading", timeout=10_000)
    expect(page.locator("#status")).to_be_empty()


def amazon_json(path: Path, n: int = 100) -> Path:
    """Amazon Multilingual Reviews as published (JSON lines, `review_body`, `stars`, ...): raw reviews."""
    import json

    with path.open("w") as fh:
        for i in range(n):
            stars = str(i % 5 + 1)
            fh.write(json.dumps({"review_id": f"en_{i:07d}", "product_id": f"product_en_{i}", "reviewer_id": f"r{i}",
                                 "stars": stars, "review_body": f"{WORDS[stars]} blender number {i}",
                                 "review_title": f"{WORDS[stars].split()[0]} {i}", "language": "en",
                                 "product_category": ["kitchen", "toy", "book"][i % 3]}) + "\n")
    return path


def test_a_raw_review_table_is_built_into_files_then_fine_tuned(page, server, tiny_models, shots):
    open_page(page, server, "/ui/new")
    page.locator("#train-file").set_input_files(str(amazon_json(server.root / "dataset_en_train.json")))
    page.locator("#upload-button").click()
    page.locator("#build-panel").wait_for(state="visible")
    assert "table of raw reviews" in page.locator("#upload-result").inner_text()
    assert "100 rows with columns review_id" in page.locator("#build-intro").inner_text()
    # Amazon's columns fit two presets; stars comes first, and it names its columns.
    assert page.locator("#build-preset").input_value() == "amazon-stars"
    assert page.locator("#build-label").input_value() == "stars" and page.locator("#build-label").is_disabled()
    checked = page.locator("#build-text input:checked")
    assert sorted(checked.evaluate_all("boxes => boxes.map(b => b.value)")) == ["review_body", "review_title"]

    # My own columns instead: the body alone, the product category as the label.
    page.locator("#build-preset").select_option("")
    page.locator("#build-text input[data-column='review_title']").uncheck()
    page.locator("#build-label").select_option("product_category")
    page.locator("#build-button").click()
    page.wait_for_selector("#class-table")
    page.screenshot(path=str(shots / "new-raw-table-1280.png"), full_page=True)
    page.set_viewport_size(SIZES["390"])  # eight column checkboxes and long file names on a phone
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    page.screenshot(path=str(shots / "new-raw-table-390.png"), full_page=True)
    page.set_viewport_size(SIZES["1280"])
    built = page.locator("#build-result").inner_text()
    assert "dataset_en_train_train.jsonl" in built and "80 rows" in built and "3 labels" in built
    assert page.locator("#class-table tbody tr").count() == 3
    files = {f["filename"]: f for f in api(server, "GET", "/v1/files")["data"]}
    assert files["dataset_en_train_valid.jsonl"]["n_rows"] == 10 and files["dataset_en_train_test.jsonl"]["n_rows"] == 10
    assert page.locator("#validation").input_value() == files["dataset_en_train_valid.jsonl"]["id"]
    train = files["dataset_en_train_train.jsonl"]["id"]
    first = httpx.get(f"{server.origin}/v1/files/{train}/content", headers={"Authorization": f"Bearer {KEY}"}).text
    assert "blender number" in first.splitlines()[0] and "review_title" not in first

    page.locator("#base-model").fill(str(tiny_models.encoder))
    page.locator("#n-epochs").fill("1")
    page.locator("#start-job").click()
    page.wait_for_url("**/ui/jobs/*")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=150_000)
    job = api(server, "GET", f"/v1/fine_tuning/jobs/{page.locator('#job').get_attribute('data-job-id')}")
    assert job["training_file"] == train
    assert job["validation_file"] == files["dataset_en_train_valid.jsonl"]["id"]


def test_nothing_leaves_the_machine(browser, server):
    assert browser.requests, "the tests above made requests"
    elsewhere = [url for url in browser.requests
                 if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).netloc != f"127.0.0.1:{server.port}"]
    assert not elsewhere
    assert not browser.page_errors, browser.page_errors
