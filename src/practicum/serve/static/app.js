// The practicum playground: plain JavaScript over the server's own API, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "practicum-api-key";
let models = [];
let running = null; // AbortController of the generation in progress
let shown = null; // the model the page was last set up for

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function failure(response) {
  try {
    const body = await response.json();
    return (body.error && body.error.message) || response.statusText;
  } catch (e) {
    return response.status + " " + response.statusText;
  }
}

async function post(path, body, signal) {
  const response = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body), signal });
  if (!response.ok) throw new Error(await failure(response));
  return response;
}

function current() {
  return models.find((m) => m.id === $("model").value);
}

async function loadModels() {
  showError("");
  const response = await fetch("/v1/models", { headers: headers() });
  if (!response.ok) {
    showError(await failure(response));
    return;
  }
  models = (await response.json()).data;
  const select = $("model");
  const keep = select.value;
  select.innerHTML = "";
  for (const m of models) {
    const option = document.createElement("option");
    option.value = m.id;
    option.textContent = `${m.id} (${m.task})`;
    select.appendChild(option);
  }
  if (models.some((m) => m.id === keep)) select.value = keep;
  choose();
}

function choose() {
  const m = current();
  if (!m) return;
  if (shown && shown.id !== m.id) {
    showPrediction({ prediction: "" });
    if (shown.kind !== m.kind) $("text").value = ""; // another kind of input: show m's example
  }
  shown = m;
  const can = (e) => (m.endpoints || []).includes(e);
  $("classify-panel").hidden = !can("predict");
  $("chat-panel").hidden = !can("generate");
  $("image").parentElement.hidden = m.kind !== "image";
  $("text").hidden = m.kind === "image";
  $("classify").hidden = m.kind === "image";
  $("text").placeholder = m.kind === "tabular" ? tabularPlaceholder(m) : "Text to classify";
  $("model-info").textContent = m.labels ? `${m.kind}; labels: ${labelList(m.labels)}` : m.kind;
}

const SHOWN_LABELS = 12;

// Every label, or the first SHOWN_LABELS and the count when there are more.
function labelList(labels) {
  if (labels.length <= SHOWN_LABELS) return labels.join(", ");
  return `${labels.slice(0, SHOWN_LABELS).join(", ")}, … (${labels.length} labels)`;
}

// A record of the model's own features with typical values (from /v1/models), as JSON.
function tabularPlaceholder(m) {
  if (!m.features || !m.features.length) return "A JSON record with the model's feature columns";
  const record = Object.fromEntries(m.features.map((f) => [f.name, f.example]));
  return "A JSON record, e.g. " + JSON.stringify(record, null, 1).replace(/\n\s*/g, " ");
}

function showPrediction(p) {
  $("label").textContent = Array.isArray(p.prediction) ? p.prediction.join(" ") : String(p.prediction);
  $("confidence").textContent = p.confidence !== undefined ? `(confidence ${p.confidence.toFixed(3)})` : "";
  const table = $("probabilities");
  table.innerHTML = "";
  const rows = Object.entries(p.probabilities || {}).sort((a, b) => b[1] - a[1]).slice(0, 10);
  for (const [label, prob] of rows) {
    const tr = table.insertRow();
    tr.insertCell().textContent = label;
    tr.insertCell().textContent = prob.toFixed(3);
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = Math.round(prob * 200) + "px";
    tr.insertCell().appendChild(bar);
  }
}

async function classify(input) {
  showError("");
  $("label").textContent = "";
  try {
    const response = await post("/v1/predict", { model: $("model").value, inputs: [input] });
    showPrediction((await response.json()).predictions[0]);
  } catch (e) {
    showError(e.message);
  }
}

function classifyText() {
  const m = current();
  const text = $("text").value;
  if (m && m.kind === "tabular") {
    try {
      return classify(JSON.parse(text));
    } catch (e) {
      return showError("a tabular model takes a JSON record: " + e.message);
    }
  }
  return classify(text);
}

function classifyImage() {
  const file = $("image").files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => classify({ image: reader.result });
  reader.readAsDataURL(file);
}

// Server-sent events over fetch: call onData with each parsed `data:` payload until [DONE].
async function readEvents(response, onData) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        onData(JSON.parse(data));
      }
    }
  }
}

async function send() {
  const m = current();
  if (!m || running) return;
  showError("");
  $("output").textContent = "";
  $("finish").textContent = "";
  running = new AbortController();
  $("send").disabled = true;
  $("stop").disabled = false;
  const prompt = $("prompt").value;
  const settings = { model: m.id, stream: true, temperature: Number($("temperature").value) };
  const tokens = Number($("max-tokens").value) || 64;
  try {
    if (m.chat) {
      const body = { ...settings, max_tokens: tokens, messages: [{ role: "user", content: prompt }] };
      const response = await post("/v1/chat/completions", body, running.signal);
      await readEvents(response, (chunk) => {
        if (chunk.error) throw new Error(chunk.error.message);
        for (const choice of chunk.choices || []) {
          if (choice.delta && choice.delta.content) $("output").textContent += choice.delta.content;
          if (choice.finish_reason) $("finish").textContent = "finish: " + choice.finish_reason;
        }
      });
    } else {
      const body = { ...settings, max_new_tokens: tokens, prompt };
      const response = await post("/v1/generate", body, running.signal);
      await readEvents(response, (event) => {
        if (event.error) throw new Error(event.error.message);
        if (event.text) $("output").textContent += event.text;
        if (event.finish_reason) $("finish").textContent = `finish: ${event.finish_reason} (${event.tokens} tokens)`;
      });
    }
  } catch (e) {
    if (e.name !== "AbortError") showError(e.message);
  } finally {
    running = null;
    $("send").disabled = false;
    $("stop").disabled = true;
  }
}

window.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = sessionStorage.getItem(KEY) || "";
  $("api-key").addEventListener("change", () => {
    sessionStorage.setItem(KEY, $("api-key").value.trim());
    loadModels();
  });
  $("model").addEventListener("change", choose);
  $("classify").addEventListener("click", classifyText);
  $("image").addEventListener("change", classifyImage);
  $("send").addEventListener("click", send);
  $("stop").addEventListener("click", () => running && running.abort());
  loadModels();
});
