// Draw on the canvas; each finished stroke sends the picture to POST /predict.
const pad = document.getElementById("pad");
const ink = pad.getContext("2d");
const seen = document.getElementById("seen").getContext("2d");
const bars = document.getElementById("bars");
let drawing = false;

function clearPad() {
  ink.fillStyle = "#fff";
  ink.fillRect(0, 0, pad.width, pad.height);
  document.getElementById("label").textContent = "-";
  document.getElementById("confidence").textContent = "";
  document.getElementById("doubt").textContent = "";
  document.getElementById("error").textContent = "";
  seen.clearRect(0, 0, 28, 28);
  showBars(new Array(10).fill(0));
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width,
          (event.clientY - box.top) * pad.height / box.height];
}

pad.addEventListener("pointerdown", (event) => {
  drawing = true;
  pad.setPointerCapture(event.pointerId);
  const [x, y] = point(event);
  ink.beginPath();
  ink.moveTo(x, y);
  ink.lineTo(x, y);
  ink.stroke();
});
pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const [x, y] = point(event);
  ink.lineTo(x, y);
  ink.stroke();
});
for (const name of ["pointerup", "pointercancel"]) {
  pad.addEventListener(name, () => {
    if (!drawing) return;
    drawing = false;
    predict();
  });
}
document.getElementById("clear").addEventListener("click", clearPad);

function showBars(probabilities) {
  bars.replaceChildren(...probabilities.map((p, digit) => {
    const row = document.createElement("li");
    row.innerHTML = `<span class="digit">${digit}</span>` +
      `<span class="bar" style="width:${Math.round(p * 200)}px"></span>` +
      `<span class="value">${(100 * p).toFixed(1)}%</span>`;
    return row;
  }));
}

function showInput(rows) {
  const image = seen.createImageData(28, 28);
  rows.flat().forEach((value, i) => {
    image.data.set([value, value, value, 255], 4 * i);
  });
  seen.putImageData(image, 0, 0);
}

async function predict() {
  const blob = await new Promise((done) => pad.toBlob(done, "image/png"));
  const form = new FormData();
  form.append("file", blob, "digit.png");
  const response = await fetch("/predict", { method: "POST", body: form });
  const answer = await response.json();
  if (!response.ok) {
    document.getElementById("error").textContent = answer.detail;
    return;
  }
  document.getElementById("error").textContent = "";
  document.getElementById("label").textContent = answer.label;
  document.getElementById("confidence").textContent =
    `(${(100 * answer.confidence).toFixed(1)}%)`;
  document.getElementById("doubt").textContent =
    answer.sure ? "" : `not sure: ${answer.top[0]} or ${answer.top[1]}?`;
  showBars(answer.probabilities);
  showInput(answer.input);
}

ink.lineWidth = 18;
ink.lineCap = "round";
ink.lineJoin = "round";
ink.strokeStyle = "#000";
clearPad();
