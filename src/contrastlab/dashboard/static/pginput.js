// Encoder mode's input plane: the 2-D inputs over a background coloured by where the encoder sends
// each location (the learned function), training points filled by class, held-out points hollow
// (never trained on: does the function generalise to them?), the anchor ringed. On the circle the
// colour is the embedding's angle (the same hues ring the circle in the embedding panel); on the
// sphere it is the embedding's direction as a pastel RGB.
import { classColour, fitCanvas } from "./common.js";

// A unit vector's colour, [r, g, b] in 0..255 (the tests recompute it in Python).
export function directionRGB(z, dim) {
  if (dim === 3) return [0, 1, 2].map((i) => Math.round(255 * (0.62 + 0.19 * (z[i] + 1))));
  const hue = ((Math.atan2(z[1], z[0]) / (2 * Math.PI)) % 1 + 1) % 1;     // 0..1 around the circle
  return hslRGB(hue, 0.55, 0.84);
}

function hslRGB(h, s, l) {
  const a = s * Math.min(l, 1 - l);
  const f = (n) => { const k = (n + h * 12) % 12; return l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1)); };
  return [f(0), f(8), f(4)].map((v) => Math.round(255 * v));
}

// Draws the plane of `frame` (inputs, held, field, g, extent) on `canvas`; returns what it drew (tests).
export function drawInputPlane(canvas, frame, labels, anchor) {
  const { ctx, w, h } = fitCanvas(canvas);
  const { n, dim, inputs, held, field, g } = frame;
  const extent = frame.meta.extent;
  const side = Math.min(w, h), x0 = (w - side) / 2, y0 = (h - side) / 2;
  const toX = (x) => x0 + ((x + extent) / (2 * extent)) * side;
  const toY = (y) => y0 + ((extent - y) / (2 * extent)) * side;
  ctx.clearRect(0, 0, w, h);
  if (!canvas.cells || canvas.cells.width !== g) {                    // the field, one pixel per cell, scaled up
    const c = document.createElement("canvas");                       // (made once per plane and grid size)
    c.width = g; c.height = g;
    canvas.cells = c;
    canvas.cellImage = c.getContext("2d").createImageData(g, g);
  }
  const cells = canvas.cells, cctx = cells.getContext("2d"), img = canvas.cellImage;
  for (let k = 0; k < g * g; k++) {
    const rgb = directionRGB(field.subarray(k * dim, k * dim + dim), dim);
    img.data[4 * k] = rgb[0]; img.data[4 * k + 1] = rgb[1]; img.data[4 * k + 2] = rgb[2]; img.data[4 * k + 3] = 255;
  }
  cctx.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;                                  // cells stay cells: what the grid holds
  ctx.drawImage(cells, x0, y0, side, side);
  ctx.strokeStyle = "#c3cad2";
  ctx.strokeRect(x0 + 0.5, y0 + 0.5, side - 1, side - 1);
  let hollow = 0;
  for (let i = 0; i < n; i++) {
    const x = toX(inputs[2 * i]), y = toY(inputs[2 * i + 1]);
    ctx.beginPath();
    ctx.arc(x, y, held[i] ? 3.2 : 2.6, 0, 2 * Math.PI);
    if (held[i]) {
      ctx.lineWidth = 1.4; ctx.strokeStyle = classColour(labels[i] ?? 0); ctx.stroke(); hollow++;
    } else {
      ctx.fillStyle = classColour(labels[i] ?? 0); ctx.fill();
    }
  }
  if (anchor >= 0 && anchor < n) {
    ctx.beginPath();
    ctx.arc(toX(inputs[2 * anchor]), toY(inputs[2 * anchor + 1]), 7, 0, 2 * Math.PI);
    ctx.lineWidth = 2; ctx.strokeStyle = "#111"; ctx.stroke();
  }
  ctx.fillStyle = "#333";
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillText("input plane · colour: where f sends it · hollow: held out", x0 + 6, y0 + 16);
  return { x0, y0, side, g, hollow, extent };
}

// The hues of the circle's angles as a thin ring around the embedding circle (dimension 2), so that a
// colour on the plane can be found on the circle.
export function drawHueRing(ctx, cx, cy, r) {
  const steps = 120;
  for (let k = 0; k < steps; k++) {
    const a0 = (2 * Math.PI * k) / steps, a1 = (2 * Math.PI * (k + 1)) / steps;
    const rgb = directionRGB([Math.cos((a0 + a1) / 2), Math.sin((a0 + a1) / 2)], 2);
    ctx.beginPath();
    ctx.arc(cx, cy, r + 9, -a0, -a1, true);                           // screen y points down: angles run clockwise
    ctx.lineWidth = 6; ctx.strokeStyle = `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`; ctx.stroke();
  }
}
