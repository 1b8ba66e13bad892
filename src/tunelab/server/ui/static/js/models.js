// Models: evaluation reports (metrics and the PNGs `tunelab evaluate` writes) and Table 4.1.
import { api, el, fill, fmt, fmtDuration, listAll, message, options, showError, visible } from "./api.js";

const imageUrls = [];

async function image(model, testFile, name, alt) {
  // Images need the key too: fetched, then shown from a blob: URL.
  const q = new URLSearchParams({ model, test_file: testFile, name });
  const response = await api(`/ui/api/evaluations/image?${q}`, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  imageUrls.push(url);
  // A link to the full-size image: with dozens of labels, a third of the page is too small to read.
  return el("figure", {}, el("a", { href: url, target: "_blank", title: `${alt}, full size` }, el("img", { src: url, alt, loading: "lazy" })),
    el("figcaption", {}, alt));
}

const HEADLINE = [["accuracy", "Accuracy"], ["good_vs_bad_accuracy", "Good vs bad accuracy"], ["one_off_accuracy", "One-off accuracy"],
  ["macro_f1", "Macro F1"], ["weighted_f1", "Weighted F1"], ["mae", "Mean absolute error"], ["qwk", "Quadratic weighted kappa"],
  ["balanced_accuracy", "Balanced accuracy"], ["top3_accuracy", "Top-3 accuracy"],
  ["rare_class_recall_mean", "Recall of the rarest classes"], ["ece", "Expected calibration error"], ["n", "Test rows"]];

// "Recall of the 10 rarest classes" only where there are more than 10: with 5 star labels it is all of them.
function rareTitle(r) {
  const n = Object.keys(r.rare_class_recall || {}).length;
  return n && n === Object.keys(r.per_class || {}).length ? `Recall of all ${n} classes (mean)` : `Recall of the ${n || 10} rarest classes`;
}

async function reportCard(r) {
  const metrics = el("table", { class: "data" }, el("tbody", {}, HEADLINE.filter(([k]) => r[k] !== undefined && r[k] !== null)
    .map(([k, title]) => el("tr", {}, el("th", { scope: "row" }, k === "rare_class_recall_mean" ? rareTitle(r) : title), el("td", { class: "num" }, fmt(r[k]))))));
  const baselines = r.baselines
    ? el("p", {}, "Baselines: ", Object.entries(r.baselines).map(([name, b], i) => [i ? "; " : "", `${name} accuracy ${fmt(b.accuracy)}`]))
    : null;
  const perClass = r.per_class
    ? el("details", {}, el("summary", {}, "Per class"), el("div", { class: "table-wrap" }, el("table", { class: "data" },
        el("thead", {}, el("tr", {}, ["Label", "Precision", "Recall", "F1", "Support"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, Object.entries(r.per_class).map(([label, m]) => el("tr", {}, el("td", {}, el("code", {}, visible(label))),
          el("td", { class: "num" }, fmt(m.precision)), el("td", { class: "num" }, fmt(m.recall)), el("td", { class: "num" }, fmt(m.f1)),
          el("td", { class: "num" }, fmt(m.support))))))))
    : null;
  const titles = { confusion_matrix: "Confusion matrix", reliability: "Reliability diagram", per_class_f1: "F1 per class" };
  const images = await Promise.all(r.images.map((name) => image(r.model, r.test_file, name, titles[name]).catch((err) => message(err.message))));
  return el("article", { class: "panel report", dataset: { model: r.model } },
    el("h3", {}, el("code", {}, r.model), ` on ${r.test_file}`),
    metrics, baselines, perClass, el("div", { class: "report-images" }, images));
}

// A few labels inline; many (Amazon's 31 categories) as their count, the list one click away: all
// of them inline made the row 16 lines high and pushed Evaluate off a phone's screen.
const INLINE_LABELS = 8;
function labelsCell(labels) {
  if (!labels) return "free text";
  const text = labels.map(visible).join(" ");
  if (labels.length <= INLINE_LABELS) return text;
  return el("details", { class: "labels" }, el("summary", {}, `${labels.length} labels`), el("span", {}, text));
}

async function showReports() {
  const reports = (await api("/ui/api/evaluations")).data;
  if (!reports.length) return;
  imageUrls.splice(0).forEach((u) => URL.revokeObjectURL(u));
  fill("reports", await Promise.all(reports.map(reportCard)));
}

function cell(value, format) {
  if (typeof value !== "number") return fmt(value);
  if (format === "duration") return fmtDuration(value);
  if (format === "int") return Math.round(value).toLocaleString("en-US");
  // as the CLI's table prints it (evaluation.report.format_cell)
  if (format === "usd") return value < 1 ? "$" + value.toFixed(4) : "$" + value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  if (/^f[123]$/.test(format || "")) return value.toFixed(Number(format[1]));
  return fmt(value, 3);
}

function compareTable(result) {
  const names = result.names || {};
  const head = el("tr", {}, el("th", { scope: "col" }, "Metric"), result.columns.map((c) => el("th", { scope: "col", class: "num" }, names[c] || c)));
  const body = result.rows.map((row) => {
    const values = result.columns.map((c) => row.values[c]);
    const numeric = values.filter((v) => typeof v === "number");
    const lowerBetter = /mae|ece|error|seconds|cost|usd/i.test(row.key);
    const best = numeric.length > 1 ? (lowerBetter ? Math.min(...numeric) : Math.max(...numeric)) : null;
    return el("tr", {}, el("th", { scope: "row" }, row.metric),
      values.map((v) => el("td", { class: "num" + (v === best && /accuracy|f1|kappa|mae|ece/i.test(row.metric) ? " best" : "") }, cell(v, row.format))));
  });
  return el("div", { class: "table-wrap" }, el("table", { class: "data", id: "compare-table" },
    el("caption", {}, `${result.n} test rows of ${result.test_file}` + (result.train_file ? `; baselines trained on ${result.train_file}` : "")),
    el("thead", {}, head), el("tbody", {}, body)));
}

export async function modelsPage() {
  let files = [];
  try {
    const [modelList, fileList] = await Promise.all([api("/v1/models"), listAll("/v1/files?purpose=fine-tune", 1000)]);
    files = fileList;
    const tuned = modelList.data.filter((m) => m.kind === "fine-tuned");
    options("test-file", files.map((f) => [f.id, `${f.filename} (${f.id}, ${f.n_rows ?? "?"} rows)`]));
    options("base-file", [["", "none"], ...files.map((f) => [f.id, `${f.filename} (${f.id})`])]);
    fill("models-body", tuned.length ? tuned.map((m) => el("tr", {},
      el("td", {}, el("input", { type: "checkbox", class: "pick", value: m.id, "aria-label": `Compare ${m.id}` })),
      el("td", { "data-label": "Model" }, el("code", {}, m.id)),
      el("td", { "data-label": "Method" }, m.method), el("td", { class: "opt" }, el("code", {}, m.base_model)),
      el("td", { "data-label": "Labels" }, labelsCell(m.labels)),
      el("td", { class: "num opt" }, m.cumulative_epochs),
      el("td", { class: "opt" }, m.job_id ? el("a", { href: `/ui/jobs/${encodeURIComponent(m.job_id)}` }, m.job_id) : ""),
      el("td", { "data-label": "Actions" }, el("button", { type: "button", class: "small", dataset: { model: m.id }, onclick: evaluate }, "Evaluate"), " ",
        el("a", { href: `/ui/playground?model=${encodeURIComponent(m.id)}` }, "Playground")))) :
      el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No fine-tuned model yet.")));
    await showReports();
  } catch (err) {
    showError("reports", err);
  }

  async function evaluate(ev) {
    const button = ev.currentTarget;
    const testFile = document.getElementById("test-file").value;
    if (!testFile) { fill("reports", message("Upload a test file first (New fine-tune, or POST /v1/files).")); return; }
    button.disabled = true;
    button.textContent = "Evaluating…";
    try {
      await api("/ui/api/evaluations", { method: "POST", json: { model: button.dataset.model, test_file: testFile,
        train_file: document.getElementById("base-file").value || null } });
      await showReports();
    } catch (err) {
      showError("reports", err);
    } finally {
      button.disabled = false;
      button.textContent = "Evaluate";
    }
  }

  const compareButton = document.getElementById("compare-button");
  compareButton.addEventListener("click", async () => {
    const picked = [...document.querySelectorAll("input.pick:checked")].map((i) => i.value);
    const panel = document.getElementById("compare-panel");
    panel.hidden = false;
    if (!picked.length) { fill("compare", message("Tick the models to compare.")); return; }
    compareButton.disabled = true;
    fill("compare", el("p", { class: "muted" }, `Evaluating ${picked.length} model(s)…`));
    try {
      const result = await api("/ui/api/compare", { method: "POST", json: { models: picked, test_file: document.getElementById("test-file").value,
        train_file: document.getElementById("base-file").value || null } });
      fill("compare", compareTable(result));
      await showReports();
    } catch (err) {
      showError("compare", err);
    } finally {
      compareButton.disabled = false;
    }
  });
}
