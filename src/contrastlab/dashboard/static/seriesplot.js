// The small plot of one probe series that a sequence run shows in place of a thumbnail: on hover
// in the map's tooltip, and beside each nearest neighbour. The run's probe series come once from
// /api/runs/N/series as (P, C, L) float32; each channel is one line, all on one shared y range.
const WIDTH = 168, HEIGHT = 64, PAD = 3;
const CHANNEL_COLOURS = ["#1f4e79", "#c0504d", "#4f8a3c", "#8064a2", "#d08a1e", "#2a9d9d", "#7f7f7f", "#b5487a"];

// Loads a run's probe series: {data, count, channels, length}, or null when the run has none.
export async function loadSeries(base) {
  const r = await fetch(`${base}/series`, { cache: "no-store" });
  if (!r.ok) return null;
  const data = new Float32Array(await r.arrayBuffer());
  const count = Number(r.headers.get("X-Count")), channels = Number(r.headers.get("X-Channels"));
  const length = Number(r.headers.get("X-Length"));
  if (!count || !channels || !length || data.length !== count * channels * length) return null;
  return { data, count, channels, length };
}

// Draws point `point` of `series` on `canvas` (sized here). Returns what it drew, for the tests:
// {point, lo, hi, ys} with ys[c][t] the canvas y (CSS px) of channel c at step t.
export function drawSeries(canvas, series, point) {
  const dpr = window.devicePixelRatio || 1;
  canvas.style.width = `${WIDTH}px`; canvas.style.height = `${HEIGHT}px`;
  canvas.width = Math.round(WIDTH * dpr); canvas.height = Math.round(HEIGHT * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, WIDTH, HEIGHT);
  const { data, channels, length } = series;
  const start = point * channels * length;
  let lo = Infinity, hi = -Infinity;
  for (let k = start; k < start + channels * length; k++) { lo = Math.min(lo, data[k]); hi = Math.max(hi, data[k]); }
  const span = hi > lo ? hi - lo : 1;                       // a constant series: a flat line in the middle
  const mid = hi > lo ? null : HEIGHT / 2;
  const x = (t) => PAD + (length > 1 ? t / (length - 1) : 0.5) * (WIDTH - 2 * PAD);
  const y = (v) => (mid !== null ? mid : PAD + (1 - (v - lo) / span) * (HEIGHT - 2 * PAD));
  const ys = [];
  ctx.lineWidth = 1.25;
  for (let c = 0; c < channels; c++) {
    const row = [];
    ctx.strokeStyle = CHANNEL_COLOURS[c % CHANNEL_COLOURS.length];
    ctx.beginPath();
    for (let t = 0; t < length; t++) {
      const yy = y(data[start + c * length + t]);
      row.push(yy);
      if (t === 0) ctx.moveTo(x(t), yy); else ctx.lineTo(x(t), yy);
    }
    ctx.stroke();
    ys.push(row);
  }
  canvas.dataset.point = String(point);
  return { point, lo, hi, ys };
}
