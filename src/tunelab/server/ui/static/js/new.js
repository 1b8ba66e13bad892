// Start a fine-tune: upload (POST /v1/files), prepare_data's report (/ui/api/files/{id}/prepare),
// the prepared file(s) uploaded through POST /v1/files, then POST /v1/fine_tuning/jobs.
// A raw review table (refused by /v1/files with code raw_table) is built into train/valid/test
// files first (/ui/api/datasets/inspect and /build, `tunelab datasets build`), uploaded the same way.
import { api, el, fill, listAll, message, options, showError, visible } from "./api.js";

const state = { file: null, report: null, accept: null, raw: null, built: null };

function rowsText(item) {
  if (!item.n_rows || /\brows?\b[^.]*\d/.test(item.message)) return ""; // the message names them already
  const shown = item.rows.join(", ");
  return item.n_rows > item.rows.length ? ` (lines ${shown}, … ${item.n_rows} in all)` : ` (line${item.n_rows > 1 ? "s" : ""} ${shown})`;
}

async function loadChoices() {
  const [models, files] = await Promise.all([api("/v1/models"), listAll("/v1/files?purpose=fine-tune", 1000)]);
  fill("base-models", models.data.map((m) => el("option", { value: m.id }, `${m.kind || ""} ${m.description || ""}`.trim())));
  const input = document.getElementById("base-model");
  if (!input.value) {
    const base = models.data.find((m) => m.kind === "base" && m.status !== "missing") || models.data[0];
    if (base) input.value = base.id;
  }
  const split = state.report && state.report.classification ? [["split", "split off 20 % of the data (stratified)"]] : [];
  const validation = document.getElementById("validation");
  const before = validation.value;
  options(validation, [...split, ["", "none"], ...files.filter((f) => !state.file || f.id !== state.file.id)
    .map((f) => [f.id, `${f.filename} (${f.id}, ${f.n_rows ?? "?"} rows)`])]);
  if (!before && split.length) validation.value = "split";
}

async function runPrepare() {
  const split = document.getElementById("validation").value === "split" || !state.report;
  const report = await api(`/ui/api/files/${encodeURIComponent(state.file.id)}/prepare`, { method: "POST", json: { accept: state.accept, split } });
  state.report = report;
  renderReport(report);
}

function renderReport(r) {
  document.getElementById("report-panel").hidden = false;
  document.getElementById("job-panel").hidden = false;
  const findings = el("ul", { class: "findings" }, r.findings.map((f) => el("li", { class: f.warning ? "warning" : "" }, (f.warning ? "Warning: " : "") + f.message + rowsText(f))));
  const actions = r.actions.length
    ? el("fieldset", {}, el("legend", {}, "Proposed fixes"), r.actions.map((a) => el("div", {},
        el("label", { class: "check" },
          el("input", { type: "checkbox", checked: a.applied, disabled: a.necessary, dataset: { key: a.key }, onchange: onActionChange }),
          a.message + rowsText(a) + (a.necessary ? " (necessary)" : "")))))
    : el("p", {}, "No fixes needed.");
  const classes = r.classes
    ? el("div", { class: "table-wrap" }, el("table", { class: "data", id: "class-table" },
        el("caption", {}, `${r.classes.length} classes`),
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Label"), el("th", { scope: "col", class: "num" }, "Rows"), el("th", { scope: "col", class: "num" }, "Share"))),
        el("tbody", {}, r.classes.map((c) => el("tr", {}, el("td", {}, el("code", {}, visible(c.label))), el("td", { class: "num" }, c.count),
          el("td", { class: "num" }, (100 * c.count / r.n_prepared).toFixed(1) + " %"))))))
    : el("p", { class: "muted" }, "Free-form completions (not classification).");
  const split = r.split
    ? el("p", {}, `Split: ${r.split.n_train} training rows, ${r.split.n_valid} validation rows` + (r.split.stratified ? ", stratified by label." : ` (${r.split.note}).`))
    : null;
  fill("report",
    el("p", {}, `${r.filename}: ${r.n_rows} rows read as ${r.format.toUpperCase()} (${r.kind}); ${r.n_prepared} rows after the fixes.`),
    findings, actions, classes, split);
}

async function onActionChange() {
  state.accept = [...document.querySelectorAll("#report input[data-key]")].filter((i) => i.checked).map((i) => i.dataset.key);
  try { await runPrepare(); } catch (err) { showError("report", err); }
}

async function upload(blob, filename) {
  const form = new FormData();
  form.append("purpose", "fine-tune");
  form.append("file", blob, filename);
  return api("/v1/files", { method: "POST", form });
}

function rawForm(blob, filename) {
  const form = new FormData();
  form.append("file", blob, filename);
  return form;
}

async function showBuild(file) {
  const table = await api("/ui/api/datasets/inspect", { method: "POST", form: rawForm(file, file.name) });
  state.raw = { file, table };
  document.getElementById("build-panel").hidden = false;
  fill("build-intro", `${table.filename}: ${table.n_rows} rows with columns ${table.columns.join(", ")}. ` +
    "Choose the text and the label, or a preset that names them.");
  options(document.getElementById("build-preset"), [
    ...table.presets.filter((p) => p.fits).map((p) => [p.name, `${p.name}: ${p.description}`]),
    ["", "my own columns (below)"]], false);
  options(document.getElementById("build-label"), table.columns.map((c) => [c, `${c} (e.g. ${table.sample[c]})`]), false);
  fill("build-text", table.columns.map((c) => el("label", { class: "check" },
    el("input", { type: "checkbox", value: c, dataset: { column: c } }), c)));
  onPresetChange();
  fill("build-result");
  document.getElementById("build-preset").focus();
}

function onPresetChange() {
  const name = document.getElementById("build-preset").value;
  const preset = state.raw.table.presets.find((p) => p.name === name);
  const label = document.getElementById("build-label");
  label.disabled = Boolean(preset);
  if (preset) label.value = preset.label_column;
  for (const box of document.querySelectorAll("#build-text input[data-column]")) {
    box.disabled = Boolean(preset);
    if (preset) box.checked = preset.text_columns.includes(box.dataset.column);
  }
}

async function buildFiles(ev) {
  ev.preventDefault();
  const button = document.getElementById("build-button");
  button.disabled = true;
  try {
    const { file } = state.raw;
    const form = rawForm(file, file.name);
    const preset = document.getElementById("build-preset").value;
    if (preset) {
      form.append("preset", preset);
    } else {
      const text = [...document.querySelectorAll("#build-text input[data-column]")].filter((b) => b.checked).map((b) => b.value);
      if (!text.length) throw new Error("Tick at least one text column.");
      form.append("text_columns", text.join(","));
      form.append("label_column", document.getElementById("build-label").value);
    }
    const size = number("build-train-size");
    if (size !== undefined) form.append("train_size", String(size));
    fill("build-result", message(`Building prompt/completion files from ${file.name}…`, "ok"));
    const built = await api("/ui/api/datasets/build", { method: "POST", form });
    const uploaded = {};
    for (const part of built.files) {
      fill("build-result", message(`Uploading ${part.filename} (${part.n_rows} rows)…`, "ok"));
      uploaded[part.role] = await upload(new Blob([part.text], { type: "application/jsonl" }), part.filename);
    }
    state.built = uploaded;
    const dropped = Object.entries(built.dropped).filter(([, n]) => n).map(([why, n]) => `${n} ${why.replace(/_/g, " ")}`);
    fill("build-result",
      message(`Built and uploaded ${built.files.map((p) => `${uploaded[p.role].filename} (${uploaded[p.role].id}, ${p.n_rows} rows)`).join(", ")}; ` +
        `${built.labels.length} labels` + (dropped.length ? `; rows dropped: ${dropped.join(", ")}` : "") + ".", "ok"),
      uploaded.test ? el("p", { class: "muted" }, `Keep ${uploaded.test.id} for the models page: evaluate the fine-tuned model on it.`) : null,
      built.notes.map((n) => el("p", { class: "muted" }, n)));
    state.file = uploaded.train;
    state.report = null;
    state.accept = null;
    await runPrepare();
    await loadChoices();
    if (uploaded.valid) {
      document.getElementById("validation").value = uploaded.valid.id;
      await runPrepare();
    }
  } catch (err) {
    showError("build-result", err);
  } finally {
    button.disabled = false;
  }
}

function number(id) {
  const v = document.getElementById(id).value.trim();
  return v === "" ? undefined : Number(v);
}

async function startJob(ev) {
  ev.preventDefault();
  const button = document.getElementById("start-job");
  button.disabled = true;
  fill("job-result", message("Uploading the prepared data…", "ok"));
  try {
    const r = state.report;
    const validation = document.getElementById("validation").value;
    let trainId = state.file.id, validId = validation && validation !== "split" ? validation : null;
    if (r.changed) {
      const parts = Object.fromEntries(r.prepared.map((p) => [p.role, p]));
      trainId = (await upload(new Blob([parts.train.text], { type: "application/jsonl" }), parts.train.filename)).id;
      if (validation === "split" && parts.valid) {
        validId = (await upload(new Blob([parts.valid.text], { type: "application/jsonl" }), parts.valid.filename)).id;
      }
    }
    const hyper = {};
    for (const [key, id] of [["n_epochs", "n-epochs"], ["learning_rate_multiplier", "lr-mult"], ["batch_size", "batch-size"]]) {
      const v = number(id);
      if (v !== undefined) hyper[key] = v;
    }
    const body = { model: document.getElementById("base-model").value.trim(), training_file: trainId };
    if (Object.keys(hyper).length) body.hyperparameters = hyper;
    if (validId) body.validation_file = validId;
    const method = document.getElementById("method").value;
    if (method !== "auto") body.method = method;
    const suffix = document.getElementById("suffix").value.trim();
    if (suffix) body.suffix = suffix;
    if (validId && r.classification && document.getElementById("metrics").checked) {
      body.compute_classification_metrics = true;
      if (r.classes && r.classes.length > 2) body.classification_n_classes = r.classes.length;
    }
    fill("job-result", message("Creating the job…", "ok"));
    const job = await api("/v1/fine_tuning/jobs", { method: "POST", json: body });
    fill("job-result", message(`Created ${job.id} (${job.status}).`, "ok"), el("a", { href: `/ui/jobs/${encodeURIComponent(job.id)}`, id: "job-link" }, "Follow the job"));
    location.assign(`/ui/jobs/${encodeURIComponent(job.id)}`);
  } catch (err) {
    showError("job-result", err);
  } finally {
    button.disabled = false;
  }
}

export async function newPage() {
  try { await loadChoices(); } catch (err) { showError("upload-result", err); }
  document.getElementById("upload-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = document.getElementById("train-file");
    if (!input.files.length) return;
    const button = document.getElementById("upload-button");
    button.disabled = true;
    fill("upload-result", message("Uploading…", "ok"));
    try {
      state.file = await upload(input.files[0], input.files[0].name);
      state.report = null;
      state.accept = null;
      fill("upload-result", message(`Uploaded ${state.file.filename} as ${state.file.id} (${state.file.n_rows} rows).`, "ok"));
      await runPrepare();
      await loadChoices();
      if (document.getElementById("validation").value !== "split" && state.report.split) await runPrepare();
    } catch (err) {
      if (err.body && err.body.error && err.body.error.code === "raw_table") {
        fill("upload-result", message(`${input.files[0].name} is a table of raw reviews, not prompt/completion rows: build the files from it below.`, "ok"));
        try { await showBuild(input.files[0]); } catch (err2) { showError("upload-result", err2); }
      } else {
        showError("upload-result", err);
      }
    } finally {
      button.disabled = false;
    }
  });
  document.getElementById("build-preset").addEventListener("change", onPresetChange);
  document.getElementById("build-form").addEventListener("submit", buildFiles);
  document.getElementById("validation").addEventListener("change", async () => {
    if (!state.file) return;
    try { await runPrepare(); } catch (err) { showError("report", err); }
  });
  document.getElementById("job-form").addEventListener("submit", startJob);
}
