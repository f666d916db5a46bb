// Two drawing pads: one digit (POST /predict) and a whole number (POST /predict/number).
// Each finished stroke sends the pad's picture to its route.
const pad = document.getElementById("pad");
const seen = document.getElementById("seen").getContext("2d");
const bars = document.getElementById("bars");
const numberPad = document.getElementById("numberPad");
const boxes = document.getElementById("boxes").getContext("2d");
const text = (id, value) => { document.getElementById(id).textContent = value; };

// Pointer strokes in black on a white canvas; `done` runs when a stroke ends.
function drawable(canvas, width, done) {
  const ink = canvas.getContext("2d");
  let drawing = false;
  const point = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width,
            (event.clientY - box.top) * canvas.height / box.height];
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    canvas.setPointerCapture(event.pointerId);
    const [x, y] = point(event);
    ink.beginPath();
    ink.moveTo(x, y);
    ink.lineTo(x, y);
    ink.stroke();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const [x, y] = point(event);
    ink.lineTo(x, y);
    ink.stroke();
  });
  for (const name of ["pointerup", "pointercancel"]) {
    canvas.addEventListener(name, () => {
      if (!drawing) return;
      drawing = false;
      done();
    });
  }
  const clear = () => {
    ink.fillStyle = "#fff";
    ink.fillRect(0, 0, canvas.width, canvas.height);
    Object.assign(ink, { lineWidth: width, lineCap: "round", lineJoin: "round", strokeStyle: "#000" });
  };
  clear();
  return clear;
}

// The canvas as a PNG, posted as the form field `file`; the answer, or null after an error.
async function post(canvas, route, errorId) {
  const blob = await new Promise((done) => canvas.toBlob(done, "image/png"));
  const form = new FormData();
  form.append("file", blob, "drawing.png");
  const response = await fetch(route, { method: "POST", body: form });
  const answer = await response.json();
  text(errorId, response.ok ? "" : answer.detail);
  return response.ok ? answer : null;
}

const doubt = (answer) => answer.sure ? "" : `not sure: ${answer.top[0]} or ${answer.top[1]}?`;

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

const clearPad = drawable(pad, 18, async () => {
  const answer = await post(pad, "/predict", "error");
  if (!answer) return;
  text("label", answer.label);
  text("confidence", `(${(100 * answer.confidence).toFixed(1)}%)`);
  text("doubt", doubt(answer));
  showBars(answer.probabilities);
  showInput(answer.input);
});

function resetDigit() {
  clearPad();
  for (const id of ["confidence", "doubt", "error"]) text(id, "");
  text("label", "-");
  seen.clearRect(0, 0, 28, 28);
  showBars(new Array(10).fill(0));
}

// Each digit's box and reading, drawn on the layer over the number pad.
function showDigits(digits) {
  boxes.clearRect(0, 0, boxes.canvas.width, boxes.canvas.height);
  boxes.font = "bold 18px system-ui, sans-serif";
  for (const digit of digits) {
    const [x, y, width, height] = digit.box;
    boxes.strokeStyle = boxes.fillStyle = digit.sure ? "#1a7f37" : "#b45309";
    boxes.lineWidth = 2;
    boxes.strokeRect(x - 3, y - 3, width + 6, height + 6);
    boxes.fillText(`${digit.label}${digit.sure ? "" : "?"}`, x, Math.max(16, y - 8));
  }
}

const clearNumberPad = drawable(numberPad, 12, async () => {
  const answer = await post(numberPad, "/predict/number", "numberError");
  if (!answer) return;
  text("number", answer.number);
  text("numberDoubt", answer.digits.filter((d) => !d.sure)
    .map((d) => `digit ${answer.digits.indexOf(d) + 1}: ${doubt(d)}`).join("; "));
  showDigits(answer.digits);
});

function resetNumber() {
  clearNumberPad();
  text("number", "-");
  text("numberDoubt", "");
  text("numberError", "");
  showDigits([]);
}

document.getElementById("clear").addEventListener("click", resetDigit);
document.getElementById("clearNumber").addEventListener("click", resetNumber);
resetDigit();
resetNumber();
