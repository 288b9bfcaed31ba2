// lhfleet dashboard: submit jobs, follow a job's progress, cancel and retry.
// Requests use the session cookie and send X-Requested-With, which the API
// requires of cookie-authenticated changes.
"use strict";

const csrf = document.body.dataset.csrf;

async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-Requested-With": csrf },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(data.error || `HTTP ${response.status}`);
  }
  return data;
}

function showError(id, message) {
  const element = document.getElementById(id);
  element.textContent = message;
  element.hidden = false;
}

function jobRequest(form) {
  const urls = form.urls.value.split("\n").map((line) => line.trim()).filter(Boolean);
  const categories = form.categories.value.split(",").map((item) => item.trim()).filter(Boolean);
  const request = {
    urls,
    runs: Number(form.runs.value),
    settings: { preset: form.preset.value, categories },
  };
  if (form.webhook.value.trim()) {
    request.hooks = [{ type: "webhook", url: form.webhook.value.trim() }];
  }
  return request;
}

function setUpSubmitForm() {
  const form = document.getElementById("submit-job");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const job = await postJson("/api/jobs", jobRequest(form));
      window.location.href = `/jobs/${job.id}`;
    } catch (error) {
      showError("submit-error", error.message);
    }
  });
}

function showProgress(job) {
  const counts = job.counts;
  const settled = counts.succeeded + counts.failed;
  const percent = (value) => (counts.total ? (100 * value) / counts.total : 0);
  document.getElementById("bar-done").style.width = `${percent(counts.succeeded)}%`;
  document.getElementById("bar-failed").style.width = `${percent(counts.failed)}%`;
  document.getElementById("count-settled").textContent = settled;
  document.getElementById("count-total").textContent = counts.total;
  document.getElementById("count-succeeded").textContent = counts.succeeded;
  document.getElementById("count-failed").textContent = counts.failed;
  document.getElementById("job-state").textContent = job.state;
}

function followJob(section) {
  const source = new EventSource(`/api/jobs/${section.dataset.job}/events`);
  source.addEventListener("progress", (event) => showProgress(JSON.parse(event.data)));
  source.addEventListener("end", (event) => {
    showProgress(JSON.parse(event.data));
    source.close();
    // The results table is drawn on the server: load the finished page.
    window.location.reload();
  });
}

function setUpJobPage() {
  const section = document.getElementById("job");
  if (!section) return;
  if (section.dataset.state === "running") followJob(section);
  section.querySelectorAll("button[data-action]").forEach((button) => {
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await postJson(`/api/jobs/${section.dataset.job}/${button.dataset.action}`);
        window.location.reload();
      } catch (error) {
        showError("action-error", error.message);
        button.disabled = false;
      }
    });
  });
}

setUpSubmitForm();
setUpJobPage();
