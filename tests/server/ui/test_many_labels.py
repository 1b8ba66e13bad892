"""The dashboard with a model of many labels (Amazon's 31 product categories), in headless Chromium:
the playground logs each answer once, and a review-queue row stays a few lines high (the likeliest
labels as buttons, the others in a list; a long prompt scrolls). The server runs in this process (uvicorn in a thread) with a fake 31-label classifier,
so no model is trained or loaded."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import free_port
from tests.server.ui.test_dashboard import CHROMIUM, LAUNCH_ARGS, SIZES, wait_until

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow  # a server and a browser

CATEGORIES = ["apparel", "automotive", "baby_product", "beauty", "book", "camera", "digital_ebook_purchase",
              "digital_video_download", "drugstore", "electronics", "furniture", "grocery", "home", "home_improvement",
              "industrial_supplies", "jewelry", "kitchen", "lawn_and_garden", "luggage", "musical_instruments",
              "office_product", "outdoor", "pc", "personal_care_appliances", "pet_products", "shoes", "sports",
              "toy", "video_games", "watch", "wireless"]


@pytest.fixture
def server(store, fake_predictors):
    import uvicorn

    from tunelab.server import create_app

    model = fake_predictors.register(store, "classifier", labels=[" " + c for c in CATEGORIES], name="enc", suffix="cats")
    port = free_port()
    live = uvicorn.Server(uvicorn.Config(create_app(store, loader=fake_predictors.loader), host="127.0.0.1", port=port,
                                         log_level="warning"))
    thread = threading.Thread(target=live.run, daemon=True)
    thread.start()
    origin = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not live.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield origin, model
    live.should_exit = True
    thread.join(timeout=15)


@pytest.fixture
def page(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium, or `bash scripts/setup.sh test`)")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS,
            viewport=SIZES["1280"], service_workers="block")
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        page.set_default_timeout(30_000)
        yield page
        context.close()


def review_queue(origin: str, model: str) -> list[dict]:
    response = httpx.get(f"{origin}/ui/api/review", params={"model": model, "limit": 50}, timeout=30)
    response.raise_for_status()
    return response.json()["data"]


def test_playground_logs_a_many_label_answer_once_and_the_queue_stays_compact(server, page):
    origin, model = server
    page.goto(f"{origin}/ui/playground?model={model}")
    page.wait_for_selector("body[data-ready]", state="attached")
    page.locator("#play-prompt").fill("Sturdy suitcase, the wheels roll well ✈️🧳 " * 300)  # a long review
    page.locator("#play-submit").click()
    page.wait_for_selector("#first-token")
    # every label shown (the completion's top_logprobs stop at 20; /v1/labels/score has them all) ...
    assert page.locator("#first-token .bar-row").count() == 31
    # ... but one prediction in the log: the scoring call is the same answer, not a second one
    deadline = time.monotonic() + 10
    while not (rows := review_queue(origin, model)):
        assert time.monotonic() < deadline, "the answer never reached the prediction log"
        time.sleep(0.1)
    time.sleep(1)  # the log is written in the background: give a second row the time to arrive
    rows = review_queue(origin, model)
    assert [r["endpoint"] for r in rows] == ["completions"]

    page.goto(f"{origin}/ui/monitor?model={model}")
    page.wait_for_selector("#queue-table")
    page.locator("#mon-window").select_option("1d")
    page.locator("#monitor-form button[type=submit]").click()
    wait_until(page, "location.search.includes('window=1d')")
    page.reload()  # the choice is in the address: a reload (or a shared link) shows the same
    page.wait_for_selector("#queue-table")
    assert page.locator("#mon-window").input_value() == "1d" and page.locator("#mon-model").input_value() == model
    row = page.locator("#queue-table tbody tr").first
    # the likeliest labels as buttons, the most likely first, every label in a list; not 31 buttons
    probs = rows[0]["label_probs"]
    likely = sorted(probs, key=lambda label: -probs[label])[:3]
    assert row.locator("button.small:not(.record-other)").count() == 3
    assert [b.get_attribute("aria-label") for b in row.locator("button.small:not(.record-other)").all()] == [
        f"Label {label.strip()} for this prediction" for label in likely]
    assert row.locator("select.other-label option").count() == 32  # 'other label (31)…' and the 31 labels
    assert row.bounding_box()["height"] < 300  # the long prompt scrolls in its cell
    page.set_viewport_size(SIZES["390"])  # on a phone each row is a block: the label buttons on the screen
    for control in (row.locator("button").last, row.locator("select.other-label")):
        box = control.bounding_box()
        assert 0 <= box["x"] and box["x"] + box["width"] <= 390, box
    assert page.evaluate("[...document.querySelectorAll('.table-wrap')].every(w => w.scrollWidth <= w.clientWidth)")
    page.set_viewport_size(SIZES["1280"])
    # a keyboard user goes through the closed list with the arrow keys: nothing is recorded on the way
    row.locator("select.other-label").focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    time.sleep(0.5)
    assert "recorded" not in row.inner_text() and len(review_queue(origin, model)) == 1
    assert row.locator("select.other-label").input_value() == " automotive"
    row.locator("select.other-label").select_option(" luggage")
    row.locator("button.record-other").click()
    wait_until(page, "document.querySelector('#queue-table tbody tr').classList.contains('done')")
    assert "recorded" in row.inner_text()
    assert review_queue(origin, model) == []  # the feedback is in: nothing left to review
    assert page.errors == []


def test_a_report_card_has_the_imbalance_metrics_and_full_size_images(server, page, tmp_path):
    """The category case study's metrics (balanced accuracy, top-3, rare-class recall) are on the
    Models page as in `tunelab evaluate`, and each chart opens full size (31 labels do not fit a third
    of the page)."""
    import json

    origin, model = server
    rows = [{"prompt": f"review {i} of a {CATEGORIES[i % 31]}\n\n###\n\n", "completion": " " + CATEGORIES[(i * 7) % 31]}
            for i in range(93)]
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with path.open("rb") as fh:
        file_id = httpx.post(f"{origin}/v1/files", files={"file": ("test.jsonl", fh)}, data={"purpose": "fine-tune"},
                             timeout=60).json()["id"]
    report = httpx.post(f"{origin}/ui/api/evaluations", json={"model": model, "test_file": file_id}, timeout=120)
    assert report.status_code == 200, report.text
    metrics = report.json()

    page.goto(f"{origin}/ui/models")
    page.wait_for_selector(".report img")
    shown = dict(line.split("\t") for line in page.locator(".report").first.inner_text().splitlines() if "\t" in line)
    for title, key in (("Balanced accuracy", "balanced_accuracy"), ("Top-3 accuracy", "top3_accuracy"),
                       ("Recall of the 10 rarest classes", "rare_class_recall_mean")):
        assert abs(float(shown[title]) - metrics[key]) < 5e-4
    links = page.locator(".report figure a")
    assert links.count() == 3
    # 31 labels in the models list are their count, the list one click away; Evaluate stays on a phone's screen
    assert page.locator("#models-table details.labels summary").inner_text() == "31 labels"
    page.set_viewport_size(SIZES["390"])
    box = page.locator(f"#models-table button[data-model='{model}']").bounding_box()
    assert 0 <= box["x"] and box["x"] + box["width"] <= 390, box
    page.set_viewport_size(SIZES["1280"])
    assert all(link.get_attribute("href").startswith("blob:") for link in links.all())
    assert page.errors == []
