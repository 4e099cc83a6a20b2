// The mammocad serve page: upload a mammogram, show its prediction; browse a folder of predictions.
// Plain JavaScript, no library; text goes into the page with textContent only (never as HTML).
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

// fetch a JSON answer; a refusal becomes an Error carrying the server's one-line message
async function getJSON(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    throw new Error(`the server did not answer (${err.message}): is mammocad serve still running?`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null; // not JSON: described by the status below
  }
  if (!response.ok) {
    throw new Error(body && typeof body.detail === "string" ? body.detail
      : `HTTP ${response.status} ${response.statusText}`);
  }
  return body;
}

function addCell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

const probability = (p) => (p === null || p === undefined ? "–" : Number(p).toFixed(3));

function showResult(prediction, title) {
  $("result-title").textContent = title;
  $("threshold").textContent = prediction.threshold === null ? "(none)" : `(${probability(prediction.threshold)})`;
  $("overlay").src = prediction.overlay_url;
  const body = $("regions").tBodies[0];
  body.replaceChildren();
  for (const region of prediction.regions) {
    const row = document.createElement("tr");
    row.className = region.suspicious ? "suspicious" : "";
    addCell(row, region.id);
    addCell(row, region.box.map((v) => Math.round(v)).join(", "));
    addCell(row, region.area_mm2 === null || region.area_mm2 === undefined
      ? `${Math.round(region.area_px)} px` : `${region.area_mm2.toFixed(1)} mm²`);
    addCell(row, region.type);
    addCell(row, probability(region.malignancy_probability));
    addCell(row, region.suspicious ? "yes" : "no");
    body.appendChild(row);
  }
  $("no-regions").hidden = prediction.regions.length > 0;
  $("json-link").href = prediction.overlay_url.replace(/\/overlay$/, "");
  $("result").hidden = false;
}

async function upload(file) {
  clearError();
  $("result").hidden = true;
  if (file.size > info.max_upload_bytes) { // the server refuses it too (HTTP 413): spare the transfer
    showError(`${file.name}: ${(file.size / 2 ** 20).toFixed(1)} MB, larger than this server's upload limit `
      + `of ${info.max_upload_mb} MB (--max-upload-mb)`);
    return;
  }
  $("status").textContent = `predicting ${file.name} …`;
  $("file").disabled = true;
  try {
    const prediction = await getJSON(`api/predict?name=${encodeURIComponent(file.name)}`, {
      method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" },
    });
    showResult(prediction, `${prediction.upload_name}: ${prediction.regions.length} region(s)`);
    $("status").textContent = `done: ${file.name}`;
  } catch (err) {
    showError(err.message);
    $("status").textContent = "";
  } finally {
    $("file").disabled = false;
    $("file").value = ""; // the same file can be chosen again
  }
}

async function openPrediction(name) {
  clearError();
  try {
    showResult(await getJSON(`api/predictions/${encodeURIComponent(name)}`), name);
  } catch (err) {
    showError(err.message);
  }
}

async function loadPredictions() {
  const rows = await getJSON("api/predictions");
  const body = $("predictions").tBodies[0];
  body.replaceChildren();
  for (const item of rows) {
    const row = document.createElement("tr");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "link";
    open.textContent = item.name;
    open.addEventListener("click", () => openPrediction(item.name));
    addCell(row, "").appendChild(open);
    for (const key of ["patient", "laterality", "view", "regions", "suspicious"]) {
      addCell(row, item[key] === null || item[key] === undefined ? "–" : item[key]);
    }
    addCell(row, probability(item.max_malignancy));
    body.appendChild(row);
  }
  $("no-predictions").hidden = rows.length > 0;
}

async function init() {
  try {
    info = await getJSON("api/info");
  } catch (err) {
    showError(err.message);
    return;
  }
  $("disclaimer").textContent = info.disclaimer;
  $("formats").textContent = info.formats;
  if (info.models) {
    const m = info.models;
    const regions = m.baseline ? `baseline ${m.baseline}` : `segmenter ${m.segmenter}`;
    $("models").textContent = `Models: classifier ${m.classifier} (${m.architecture}, ${m.task}, threshold `
      + `${probability(m.threshold)}); regions from ${regions}.`;
    $("file").accept = info.accept;
    $("file").addEventListener("change", () => {
      if ($("file").files.length) upload($("file").files[0]);
    });
    $("upload-section").hidden = false;
  }
  $("overlay").addEventListener("error", () => {
    if ($("overlay").getAttribute("src")) showError("the overlay image could not be loaded");
  });
  if (info.predictions) {
    $("folder").textContent = info.predictions;
    $("browse-section").hidden = false;
    try {
      await loadPredictions();
    } catch (err) {
      showError(err.message);
    }
  }
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", init);
