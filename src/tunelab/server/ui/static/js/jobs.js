// Jobs list and job page.
import { api, badge, copyButton, el, fill, fmt, fmtDuration, fmtTime, listAll, message, showError, status, TERMINAL } from "./api.js";
import { lineChart } from "./charts.js";

const PREFIX = "/ui";
const POLL_MS = 2000;
const RETRY_MS = 5000;

// The server gone (stopped or restarting) while the page is open: said once at the top, the page
// keeps what it showed, and it asks again until the server answers (it used to stop polling, so a
// restarted server left the page on the error until a reload).
let offline = false;
function serverGone(err) {
  if (err.status !== 0) return false;
  offline = true;
  fill("status", message(err.message + ` Trying again every ${RETRY_MS / 1000} s.`));
  return true;
}
function serverBack() {
  if (offline) status(null);
  offline = false;
}

// Step, total and ETA from the newest step event (what `tunelab` prints as its progress bar).
export function progressOf(job, events) {
  if (job.status === "succeeded") return { fraction: 1, text: "done" };
  const last = events.find((e) => e.data && e.data.total_steps && e.data.step !== undefined);
  if (!last) return { fraction: 0, text: job.status === "running" ? "starting" : "" };
  const { step, total_steps: total } = last.data;
  const fraction = Math.min(1, step / total);
  let eta = null;
  if (job.status === "running" && job.started_at && step > 0) {
    const elapsed = Date.now() / 1000 - job.started_at;
    eta = (elapsed * (total - step)) / step;
  }
  return { fraction, step, total, eta, text: `${step}/${total} steps` + (eta !== null ? ` · ETA ${fmtDuration(eta)}` : "") };
}

function progressBar(p) {
  return el("div", {},
    el("div", { class: "progress", role: "progressbar", "aria-label": "Progress", "aria-valuetext": p.text || undefined,
                "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": Math.round(p.fraction * 100) },
      el("span", { style: `width:${(p.fraction * 100).toFixed(1)}%` })),
    el("small", { class: "muted" }, p.text));
}

function hyperText(job) {
  const h = job.hyperparameters || {};
  const lr = typeof h.learning_rate_multiplier === "number" ? +h.learning_rate_multiplier.toPrecision(4) : fmt(h.learning_rate_multiplier);
  return `epochs ${fmt(h.n_epochs)} · batch ${fmt(h.batch_size)} · lr×${lr}`;
}

export async function jobsPage() {
  const body = document.getElementById("jobs-body");
  async function refresh() {
    let jobs;
    try {
      jobs = await listAll("/v1/fine_tuning/jobs");
    } catch (err) {
      if (serverGone(err)) return RETRY_MS;
      fill(body, el("tr", {}, el("td", { colspan: 8 }, el("div", { class: "message error", role: "alert" }, err.message))));
      return null;
    }
    serverBack();
    if (!jobs.length) {
      fill(body, el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No jobs yet. ", el("a", { href: PREFIX + "/new" }, "Start a fine-tune"), ".")));
      return null;
    }
    const live = jobs.filter((j) => !TERMINAL.includes(j.status));
    const events = {};
    await Promise.all(live.map(async (j) => {
      events[j.id] = (await api(`/v1/fine_tuning/jobs/${encodeURIComponent(j.id)}/events?limit=50`).catch(() => ({ data: [] }))).data;
    }));
    fill(body, jobs.map((j) => el("tr", { dataset: { job: j.id } },
      el("td", { "data-label": "Job" }, el("a", { href: `${PREFIX}/jobs/${encodeURIComponent(j.id)}` }, j.id)),
      el("td", { "data-label": "Status" }, badge(j.status)),
      el("td", { "data-label": "Progress" }, progressBar(progressOf(j, events[j.id] || []))),
      el("td", { class: "opt" }, el("code", {}, j.base_model || j.model),
        j.model && j.model !== j.base_model ? el("small", { class: "muted" }, " continues ", el("code", {}, j.model)) : null),
      el("td", { class: "opt" }, j.training_method),
      el("td", { class: "opt" }, hyperText(j)),
      el("td", { class: "opt" }, fmtTime(j.created_at)),
      el("td", { "data-label": "Fine-tuned model" }, j.fine_tuned_model ? el("code", {}, j.fine_tuned_model) : ""))));
    return live.length > 0 ? POLL_MS : null;
  }
  const again = async () => { const wait = await refresh(); if (wait) setTimeout(again, wait); };
  await again();
}

function snippet(modelId, separator) {
  const sep = JSON.stringify(separator || "");
  return `import math
from openai import OpenAI

client = OpenAI(base_url="${location.origin}/v1",
                api_key="YOUR_KEY")
res = client.completions.create(
    model="${modelId}",
    prompt="Your review text" + ${sep},
    max_tokens=1, temperature=0, logprobs=5)
print("Predicted:", res.choices[0].text.strip())
top = res.choices[0].logprobs.top_logprobs[0]
for token, logprob in top.items():
    print(f"{token!r}: {math.exp(logprob):.4f}")`;
}

function dl(target, pairs) {
  fill(target, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "").flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function column(results, name) {
  const i = results.columns.indexOf(name), s = results.columns.indexOf("step");
  if (i < 0) return [];
  return results.rows.filter((r) => r[i] !== null && r[s] !== null).map((r) => [r[s], r[i]]);
}

function drawCurves(results, events) {
  // Before the results file exists, the step events carry the same numbers.
  if (!results.rows.length) {
    const steps = events.filter((e) => e.data && e.data.step !== undefined && e.data.loss !== undefined).reverse();
    results = { columns: ["step", "training_loss", "validation_loss", "classification/accuracy"],
                rows: steps.map((e) => [e.data.step, e.data.loss, e.data.validation_loss ?? null, e.data["classification/accuracy"] ?? null]) };
  }
  // Both charts on the steps of the whole run: a 1-epoch job's one accuracy point sits at its step,
  // not alone on an axis of 62…64.
  const steps = column(results, "training_loss").map((p) => p[0]);
  const xRange = steps.length ? { xMin: Math.min(...steps), xMax: Math.max(...steps) } : {};
  lineChart("chart-loss", [
    { name: "training loss", points: column(results, "training_loss") },
    { name: "validation loss", points: column(results, "validation_loss") },
  ], { title: "Loss by step", empty: "No steps yet.", ...xRange });
  const acc = column(results, "classification/accuracy");
  const sampled = column(results, "validation_sequence_accuracy");
  lineChart("chart-acc", [
    { name: "validation accuracy", points: acc.length ? acc : sampled },
    { name: "validation token accuracy", points: acc.length ? [] : column(results, "validation_token_accuracy") },
    // the curve watched while it ran stays once the whole-file accuracy arrives
    { name: "validation accuracy (sample, by step)", points: acc.length ? sampled : [] },
  ], { title: "Validation accuracy by step", yMin: 0, yMax: 1, empty: "No validation steps yet (a validation file gives this curve).", ...xRange });
}

// The name a file was uploaded under, next to its id (fetched once per file; the id alone when the
// file is gone).
const fileNames = new Map();
function lookUpFiles(ids) {
  return Promise.all(ids.filter((id) => id && !fileNames.has(id)).map((id) =>
    api(`/v1/files/${encodeURIComponent(id)}`).then((f) => fileNames.set(id, f.filename), () => fileNames.set(id, null))));
}
function fileCell(id) {
  const name = fileNames.get(id);
  return name ? el("span", {}, name, " ", el("code", {}, id)) : el("code", {}, id);
}

export async function jobPage() {
  const root = document.getElementById("job");
  const id = root.dataset.jobId;
  const cancel = document.getElementById("cancel-job");
  let shownModel = null;
  let cancelAsked = false;
  cancel.addEventListener("click", async () => {
    if (!confirm(`Cancel ${id}?`)) return;
    cancel.disabled = true;
    try {
      await api(`/v1/fine_tuning/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
      status("Cancellation requested; a running job stops at its next step.");
      cancelAsked = true;
    } catch (err) {
      status(err.message);
    }
    cancel.disabled = false;
  });

  async function refresh() {
    let job, events, results, checkpoints;
    try {
      job = await api(`/v1/fine_tuning/jobs/${encodeURIComponent(id)}`);
      [events, results, checkpoints] = await Promise.all([
        api(`/v1/fine_tuning/jobs/${encodeURIComponent(id)}/events?limit=1000`).then((r) => r.data),
        api(`/ui/api/jobs/${encodeURIComponent(id)}/results`),
        api(`/v1/fine_tuning/jobs/${encodeURIComponent(id)}/checkpoints?limit=100`).then((r) => r.data),
      ]);
    } catch (err) {
      if (serverGone(err)) return RETRY_MS;
      if (err.status === 404 && !job) {
        // A deep link to a job that does not exist (mistyped, or another store's): said in place of
        // the job's panels, which would otherwise wait empty under a "…" badge.
        fill(root, message(err.message), el("p", {}, el("a", { href: PREFIX }, "All fine-tuning jobs"), " · ",
          el("a", { href: `${PREFIX}/new` }, "Start a fine-tune")));
        document.title = "Job not found · tunelab";
        return null;
      }
      showError("job-summary", err);
      return null;
    }
    serverBack();
    fill("job-status", job.status);
    document.getElementById("job-status").className = "badge " + job.status;
    cancel.hidden = TERMINAL.includes(job.status);
    if (cancelAsked && TERMINAL.includes(job.status)) {  // the badge says how it ended now
      status(null);
      cancelAsked = false;
    }
    await lookUpFiles([job.training_file, job.validation_file]);
    const p = progressOf(job, events);
    fill("progress", progressBar(p));
    dl("job-summary", [
      ["Base model", el("code", {}, job.base_model)],
      ["Trained from", job.model !== job.base_model ? el("code", {}, job.model) : ""],
      ["Method", job.training_method],
      ["Training file", fileCell(job.training_file)],
      ["Validation file", job.validation_file ? fileCell(job.validation_file) : "none"],
      ["Created", fmtTime(job.created_at)],
      ["Finished", fmtTime(job.finished_at)],
      ["Training time", job.train_seconds ? fmtDuration(job.train_seconds) : ""],
      ["Trained tokens", job.trained_tokens],
      ["Error", job.error ? job.error.message : ""],
    ]);
    dl("hyper", Object.entries(job.hyperparameters_full || {}).map(([k, v]) => [k, typeof v === "object" && v !== null ? JSON.stringify(v) : String(v)]));
    fill("events", events.map((e) => el("li", { class: e.level }, el("time", {}, new Date(e.created_at * 1000).toLocaleTimeString()), e.message)));
    fill("checkpoints", checkpoints.map((c) => el("tr", {},
      el("td", { class: "num" }, c.epoch), el("td", { class: "num" }, c.step_number),
      // The epoch's score on the whole validation file, as keep_best saw it and as
      // `fine_tunes.checkpoints --table` lists it (the curves' validation loss is a 64-row sample).
      el("td", { class: "num" }, fmt(c.metrics.train_loss, 4)),
      el("td", { class: "num" }, fmt((c.all_metrics || {}).selection_accuracy, 4)),
      el("td", { class: "num" }, fmt((c.all_metrics || {}).selection_score, 4)),
      el("td", {}, el("code", {}, c.fine_tuned_model_checkpoint)))));
    drawCurves(results, events);
    if (job.fine_tuned_model && shownModel !== job.fine_tuned_model) {
      shownModel = job.fine_tuned_model;
      const sep = await api(`/ui/api/separator?model=${encodeURIComponent(job.fine_tuned_model)}`).catch(() => ({}));
      fill("model-box",
        el("div", { class: "model-id" }, el("code", { id: "model-id" }, job.fine_tuned_model), copyButton(job.fine_tuned_model, "Copy model id")),
        el("p", {}, el("a", { href: `${PREFIX}/playground?model=${encodeURIComponent(job.fine_tuned_model)}` }, "Try it in the playground"),
          " · ", el("a", { href: `${PREFIX}/models` }, "Evaluate it")),
        el("h3", {}, "Call it (Listing 4.3)"),
        el("pre", { id: "snippet" }, snippet(job.fine_tuned_model, sep.separator)),
        copyButton(snippet(job.fine_tuned_model, sep.separator), "Copy code"));
    }
    await lineage(job);
    return TERMINAL.includes(job.status) ? null : POLL_MS;
  }
  const again = async () => { const wait = await refresh(); if (wait) setTimeout(again, wait); };
  await again();
}

// Continued from (the model this job trained on) and continued by (jobs that trained on its model).
async function lineage(job) {
  const parts = [];
  if (job.model && job.model !== job.base_model && job.model.includes(":")) {
    const parent = await api(`/v1/models/${encodeURIComponent(job.model)}`).catch(() => null);
    parts.push(el("p", {}, "Continued from ", el("code", {}, job.model),
      parent && parent.job_id ? [" (", el("a", { href: `${PREFIX}/jobs/${encodeURIComponent(parent.job_id)}` }, parent.job_id), ")"] : ""));
  }
  if (job.fine_tuned_model) {
    const jobs = await listAll("/v1/fine_tuning/jobs").catch(() => []);
    const children = jobs.filter((j) => j.model === job.fine_tuned_model);
    if (children.length) {
      parts.push(el("p", {}, "Continued by ", children.map((c, i) => [i ? ", " : "", el("a", { href: `${PREFIX}/jobs/${encodeURIComponent(c.id)}` }, c.id)])));
    }
  }
  if (!parts.length) parts.push(el("p", { class: "muted" }, "Trained from the base model."));
  fill("lineage", parts);
}
