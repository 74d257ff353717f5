// MedMO web page: upload an image, ask / ground / report through the server's /v1/medmo/* endpoints, and
// draw the returned boxes (original-image pixels) over the image on a canvas. Plain JS, no build step.
"use strict";

const PALETTE = ["#ff3b30", "#34c759", "#007aff", "#ffcc00", "#af52de", "#ff9500"];
const $ = (id) => document.getElementById(id);
const state = { dataUrl: null, img: null };

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function post(path, body) {
  const r = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((data.error && data.error.message) || `HTTP ${r.status}`);
  return data;
}

function readDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function isDicom(file, dataUrl) {
  if (/\.(dcm|dicom)$/i.test(file.name) || file.type === "application/dicom") return true;
  // Files without an extension: the DICM magic sits at byte offset 128 (base64 offset 172 after the comma).
  const payload = dataUrl.slice(dataUrl.indexOf(",") + 1);
  return atob(payload.slice(0, 180)).slice(128, 132) === "DICM";
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the browser could not display this image"));
    img.src = src;
  });
}

function draw(boxes = []) {
  const canvas = $("canvas"), ctx = canvas.getContext("2d"), img = state.img;
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  ctx.drawImage(img, 0, 0);
  const lw = Math.max(2, Math.round(Math.max(canvas.width, canvas.height) / 200));
  ctx.lineWidth = lw;
  ctx.font = `${Math.max(12, 4 * lw)}px sans-serif`;
  boxes.forEach((b, i) => {
    const [x1, y1, x2, y2] = b.box;
    ctx.strokeStyle = ctx.fillStyle = PALETTE[i % PALETTE.length];
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    ctx.fillText(b.label, x1 + lw, y1 > 16 + lw ? y1 - lw - 2 : y1 + 14 + lw);
  });
  canvas.dataset.boxes = String(boxes.length);
}

function showBoxes(boxes) {
  const list = $("boxes");
  list.replaceChildren();
  boxes.forEach((b, i) => {
    const li = document.createElement("li");
    li.className = "box";
    li.style.color = PALETTE[i % PALETTE.length];
    li.textContent = `${b.label}: [${b.box.map((v) => Math.round(v)).join(", ")}] px`;
    list.appendChild(li);
  });
}

async function onFile() {
  const file = $("file").files[0];
  if (!file) return;
  setStatus("loading image…");
  try {
    let dataUrl = await readDataUrl(file), display = dataUrl;
    if (isDicom(file, dataUrl)) {
      dataUrl = "data:application/dicom;base64," + dataUrl.slice(dataUrl.indexOf(",") + 1);
      display = (await post("/v1/medmo/render", { image: dataUrl })).image;  // windowed server-side
    }
    state.dataUrl = dataUrl;
    state.img = await loadImage(display);
    draw();
    showBoxes([]);
    $("answer").textContent = "";
    document.querySelectorAll("#tasks button").forEach((b) => (b.disabled = false));
    setStatus(`${file.name}: ${state.img.naturalWidth}×${state.img.naturalHeight}`);
  } catch (e) {
    setStatus(e.message, true);
  }
}

async function run(task) {
  if (!state.dataUrl) return setStatus("choose an image first", true);
  const prompt = $("prompt").value.trim();
  if (task !== "report" && !prompt) return setStatus(task === "ask" ? "type a question" : "type what to locate", true);
  const buttons = document.querySelectorAll("#tasks button");
  buttons.forEach((b) => (b.disabled = true));
  setStatus(`${task}: waiting for the model…`);
  try {
    const body = { image: state.dataUrl };
    if (task === "ask") body.question = prompt;
    if (task === "ground") body.target = prompt;
    const data = await post(`/v1/medmo/${task}`, body);
    const boxes = data.boxes || [];
    $("answer").textContent = data.answer ?? data.report ?? data.text ?? "";
    draw(boxes);
    showBoxes(boxes);
    setStatus(task === "ground" ? `${boxes.length} box(es) found` : "done");
  } catch (e) {
    setStatus(e.message, true);
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

$("file").addEventListener("change", onFile);
document.querySelectorAll("#tasks button").forEach((b) => b.addEventListener("click", () => run(b.dataset.task)));
