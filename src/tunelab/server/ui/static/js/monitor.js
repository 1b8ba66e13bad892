// Monitoring: the windows of `tunelab monitor` and the review queue (feedback through POST /v1/feedback).
import { api, el, fill, fmt, fmtTime, message, options, showError, visible } from "./api.js";

function windowsTable(report) {
  if (!report.windows.length) return el("p", { class: "muted" }, `No predictions of ${report.model} logged yet.`);
  return el("div", { class: "table-wrap" }, el("table", { class: "data stack", id: "windows-table" },
    el("caption", {}, `${report.n} predictions in windows of ${report.window}; ${report.feedback} with feedback` + (report.alarm ? " — ALARM" : "")),
    el("thead", {}, el("tr", {}, ["Window", "Predictions", "Estimated accuracy", "Realized accuracy", "Label drift (JS)", "Confidence drift (KS)", "Checks"]
      .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, report.windows.map((w) => el("tr", {},
      el("td", { title: `${w.start} – ${w.end}`, "data-label": "Window" }, `${fmtTime(w.start_ts)} – ${fmtTime(w.end_ts)}`),
      el("td", { class: "num", "data-label": "Predictions" }, w.n),
      el("td", { class: "num", "data-label": "Estimated accuracy" }, fmt(w.expected && w.expected.accuracy)),
      el("td", { class: "num", "data-label": "Realized accuracy" }, w.realized ? `${fmt(w.realized.accuracy)} (${w.realized.n ?? ""})` : "–"),
      el("td", { class: "num", "data-label": "Label drift (JS)" }, fmt(w.label_drift && w.label_drift.js_distance)),
      el("td", { class: "num", "data-label": "Confidence drift (KS)" }, fmt(w.confidence_drift && w.confidence_drift.ks)),
      el("td", { "data-label": "Checks" }, el("ul", {},
        w.enough_rows === false ? el("li", { class: "muted" }, `Too few predictions to judge (fewer than ${report.thresholds.min_rows}): no alarm.`) : null,
        w.checks.map((c) => el("li", { class: c.alarm ? "alarm" : "", title: c.name },
          `${CHECK_NAMES[c.name] || c.name}: ${c.detail}` + (c.alarm ? " (alarm)" : ""))))))))));
}

// The report's check names in words; the name itself is the item's tooltip (it is what --json and
// the CLI's table use).
const CHECK_NAMES = {
  label_drift: "Predicted labels (Jensen-Shannon distance to the reference)",
  confidence_drift: "Confidence (Kolmogorov-Smirnov test against the reference)",
  estimated_accuracy: "Estimated accuracy",
  realized_accuracy: "Accuracy on feedback",
  text_drift: "Prompt text unlike the training prompts",
  empty: "Empty prompts",
  non_text: "Prompts that are not text",
  truncated: "Truncated prompts",
  duplicates: "Repeated prompts",
  latency_p95_ms: "Latency (95th percentile)",
};

const MAX_BUTTONS = 8; // more labels than this (Amazon's 31 categories): the row's likeliest as buttons, the rest in a list
const LIKELY = 3;

function labelChoices(r, labels, record) {
  const button = (label) => el("button", { type: "button", class: "small", "aria-label": `Label ${label.trim()} for this prediction`,
    onclick: () => record(label) }, visible(label));
  if (labels.length <= MAX_BUTTONS) return el("div", { class: "labels-row" }, labels.map(button));
  const probs = r.label_probs || {};
  const likely = [...labels].sort((a, b) => (probs[b] ?? 0) - (probs[a] ?? 0)).slice(0, LIKELY);
  // Picked in the list, recorded by its own button: a keyboard user moves through a closed <select>
  // with the arrow keys, and each step fires `change` (recording on it stored the first label passed).
  const other = el("select", { class: "other-label", "aria-label": "Another label for this prediction",
    onchange: (ev) => { save.disabled = !ev.target.value; } },
    el("option", { value: "" }, `other label (${labels.length})…`), labels.map((label) => el("option", { value: label }, visible(label))));
  const save = el("button", { type: "button", class: "small record-other", disabled: true,
    "aria-label": "Record the label picked in the list for this prediction", onclick: () => { if (other.value) record(other.value); } },
    "Record");
  return el("div", { class: "labels-row" }, likely.map(button), other, save);
}

function queueTable(model, queue, onRecorded) {
  if (!queue.data.length) return el("p", { class: "muted" }, "Nothing to review: every logged prediction has feedback.");
  return el("div", { class: "table-wrap" }, el("table", { class: "data stack", id: "queue-table" },
    el("thead", {}, el("tr", {}, ["When", "Prompt", "Predicted", "Margin", "Right label"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, queue.data.map((r) => {
      const result = el("span", { class: "muted", role: "status" });
      const row = el("tr", {});
      async function record(label) {
        try {
          const fb = await api("/v1/feedback", { method: "POST", json: { id: r.response_id, index: r.prompt_index, label, source: "human" } });
          fill(result, fb.correct ? "recorded: the model was right" : `recorded: ${visible(fb.label)}`);
          row.classList.add("done");
          onRecorded(); // the windows' feedback count and realized accuracy include it now
        } catch (err) {
          fill(result, err.message);
        }
      }
      return fill(row,
        el("td", { "data-label": "When" }, fmtTime(r.created_at)),
        el("td", { "data-label": "Prompt" }, el("div", { class: "prompt-echo" }, r.prompt ?? "(text not kept)")), // a cell ignores max-height
        el("td", { "data-label": "Predicted" }, el("code", {}, visible(r.prediction ?? "")), ` ${fmt(r.top1_prob)}`),
        el("td", { class: "num", "data-label": "Margin" }, fmt(r.margin)),
        el("td", { "data-label": "Right label" }, labelChoices(r, queue.labels || [], record), result));
    }))));
}

export async function monitorPage() {
  try {
    const models = (await api("/v1/models")).data.filter((m) => m.kind === "fine-tuned" && m.labels);
    options("mon-model", models.map((m) => [m.id, m.id]));
    const query = new URLSearchParams(location.search);
    const wanted = query.get("model");
    if (wanted && models.some((m) => m.id === wanted)) document.getElementById("mon-model").value = wanted;
    const windowSelect = document.getElementById("mon-window");
    if ([...windowSelect.options].some((o) => o.value === query.get("window"))) windowSelect.value = query.get("window");
    if (!models.length) fill("windows", message("No classification model yet: monitoring needs a fine-tuned model with labels.", "ok"));
  } catch (err) {
    showError("windows", err);
    return;
  }
  async function show(ev) {
    if (ev) ev.preventDefault();
    const model = document.getElementById("mon-model").value;
    if (!model) return;
    const q = (extra) => new URLSearchParams({ model, ...extra });
    const windowsQuery = q({ window: document.getElementById("mon-window").value });
    history.replaceState(history.state, "", `?${windowsQuery}`); // a reload or a shared link shows the same
    fill("windows", el("p", { class: "muted" }, "Reading the prediction log…"));
    const [report, queue] = await Promise.allSettled([
      api(`/ui/api/monitor?${windowsQuery}`),
      api(`/ui/api/review?${q({ limit: 20 })}`),
    ]);
    // After a click in the queue, only the windows are read again: the queue keeps its rows and the focus.
    const refreshWindows = () => api(`/ui/api/monitor?${windowsQuery}`)
      .then((r) => fill("windows", windowsTable(r)), (err) => showError("windows", err));
    if (report.status === "fulfilled") fill("windows", windowsTable(report.value)); else showError("windows", report.reason);
    if (queue.status === "fulfilled") fill("queue", queueTable(model, queue.value, refreshWindows)); else showError("queue", queue.reason);
  }
  document.getElementById("monitor-form").addEventListener("submit", show);
  await show();
}
