// Points drawn by WebGL2: one hand-written point shader (squares or discs of a size in device pixels, one
// colour each), rendered into a canvas that is not on the page and then drawn as the base layer of a 2-D
// canvas, so arrows, rings and labels stay Canvas2D and a PNG or a recording of that canvas has the points.
//
// Why hand-written and not a library from the npm registry: regl-scatterplot and deck.gl bring their own
// camera, picking and layout, and both pages already own those; what is left is ~60 lines of GL. Every point
// covers exactly the pixels of the Canvas2D path (the same flooring and the same disc), so the two paths can
// be checked against each other and against a float64 reference (tests/dashboard/test_glpoints_browser.py).
//
// Which path draws: `pointRenderer()`. WebGL needs a GPU to be the fast path: on a machine without one,
// chromium's WebGL2 is SwiftShader, a software rasterizer, and there the ImageData loop is faster
// (benchmarks/dashboard.py measures both), so "auto" takes WebGL only on a hardware renderer.
//
//   const gl = GLPoints.create();                       // null: no WebGL2 here
//   gl.draw({ xy, colours, count, k: [kx, ky], o: [ox, oy], size: 2, round: false, width, height });
//   ctx.drawImage(gl.canvas, 0, 0);

const VERTEX = `#version 300 es
in vec2 xy; in vec4 colour; in float size;
uniform vec2 k; uniform vec2 o; uniform vec2 screen; uniform float round;
out vec4 v_colour; flat out float v_size;
void main() {
  vec2 s = xy * k + o;                               // device pixels, y down
  // the pixels the Canvas2D path writes: squares from floor(s), size px; discs centred on round(s)
  vec2 c = round > 0.5 ? floor(s + 0.5) + 0.5 : floor(s) + 0.5 * size;
  gl_Position = vec4(2.0 * c.x / screen.x - 1.0, 1.0 - 2.0 * c.y / screen.y, 0.0, 1.0);
  gl_PointSize = size;
  v_colour = colour; v_size = size;
}`;

const FRAGMENT = `#version 300 es
precision highp float;
in vec4 v_colour; flat in float v_size; uniform float round; out vec4 outColour;
void main() {
  if (round > 0.5) {                                 // the disc of radius r = (size - 1) / 2, as pgdraw.js stamps it
    vec2 d = floor((gl_PointCoord - 0.5) * v_size + 0.5);
    float r = 0.5 * (v_size - 1.0);
    if (dot(d, d) > r * r + r * 0.6 + 1e-3) discard;
  }
  outColour = v_colour;
}`;

const SOFTWARE = /swiftshader|llvmpipe|softpipe|software|basic render/i;

function compile(gl, type, source) {
  const s = gl.createShader(type);
  gl.shaderSource(s, source);
  gl.compileShader(s);
  if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(`point shader: ${gl.getShaderInfoLog(s)}`);
  return s;
}

export class GLPoints {
  // A WebGL2 point layer, or null where the browser has no WebGL2.
  static create() {
    const canvas = document.createElement("canvas");
    const gl = canvas.getContext("webgl2", { antialias: false, premultipliedAlpha: false, preserveDrawingBuffer: false });
    return gl ? new GLPoints(canvas, gl) : null;
  }

  constructor(canvas, gl) {
    this.canvas = canvas;
    this.gl = gl;
    const ext = gl.getExtension("WEBGL_debug_renderer_info");
    this.renderer = String(ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER));
    this.software = SOFTWARE.test(this.renderer);
    const program = gl.createProgram();
    gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX));
    gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(`point shader: ${gl.getProgramInfoLog(program)}`);
    this.program = program;
    this.loc = Object.fromEntries(["k", "o", "screen", "round"].map((n) => [n, gl.getUniformLocation(program, n)]));
    this.vao = gl.createVertexArray();
    gl.bindVertexArray(this.vao);
    const attribute = (name, n, type, norm) => {
      const buffer = gl.createBuffer(), at = gl.getAttribLocation(program, name);
      gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
      gl.enableVertexAttribArray(at);
      gl.vertexAttribPointer(at, n, type, norm, 0, 0);
      return { buffer, at, source: null, length: -1 };
    };
    this.attr = { xy: attribute("xy", 2, gl.FLOAT, false), colour: attribute("colour", 4, gl.UNSIGNED_BYTE, true) };
    this.sizeAt = gl.getAttribLocation(program, "size");
    this.sizes = { buffer: gl.createBuffer(), source: null, length: -1 };
    this.draws = 0;
  }

  // Upload `data` (viewed as `bytes`) into attribute buffer `a` unless it is the array uploaded last time and
  // `fresh` is false: a pan moves only the uniforms, not a million points.
  _upload(a, data, fresh, bytes = data) {
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, a.buffer);
    if (a.source === data && a.length === data.length && !fresh) return;
    gl.bufferData(gl.ARRAY_BUFFER, bytes, gl.DYNAMIC_DRAW);
    a.source = data; a.length = data.length;
  }

  // Draw `count` points: xy (Float32Array, 2 per point, any units) mapped to device pixels by s = xy * k + o,
  // colours (Uint32Array of little-endian RGBA words), size in device pixels (a number, or a Float32Array per
  // point), round: discs instead of squares. `fresh`: the arrays' contents changed since the last draw.
  draw({ xy, colours, count, k, o, size, round = false, width, height, background = null, fresh = true }) {
    const gl = this.gl, c = this.canvas;
    if (c.width !== width || c.height !== height) { c.width = width; c.height = height; }
    gl.viewport(0, 0, width, height);
    if (background) gl.clearColor(...background); else gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.useProgram(this.program);
    gl.bindVertexArray(this.vao);
    this._upload(this.attr.xy, xy, fresh);
    this._upload(this.attr.colour, colours, fresh, new Uint8Array(colours.buffer, colours.byteOffset, colours.byteLength));
    if (typeof size === "number") {
      gl.disableVertexAttribArray(this.sizeAt);
      gl.vertexAttrib1f(this.sizeAt, size);
    } else {
      gl.bindBuffer(gl.ARRAY_BUFFER, this.sizes.buffer);
      gl.enableVertexAttribArray(this.sizeAt);
      gl.vertexAttribPointer(this.sizeAt, 1, gl.FLOAT, false, 0, 0);
      this._upload(this.sizes, size, fresh);
    }
    gl.uniform2f(this.loc.k, k[0], k[1]);
    gl.uniform2f(this.loc.o, o[0], o[1]);
    gl.uniform2f(this.loc.screen, width, height);
    gl.uniform1f(this.loc.round, round ? 1 : 0);
    gl.drawArrays(gl.POINTS, 0, count);
    this.draws++;
  }
}

// Which path draws points: "webgl" or "pixels". localStorage "contrastlab.points" = "webgl" | "pixels" | "auto"
// (default) chooses (the page's "points" menu sets it); "auto" takes WebGL on a hardware renderer only.
// Returns {mode, renderer, want, gl}.
export const POINT_PATHS = ["auto", "webgl", "pixels"];
const STORE = "contrastlab.points";
let chosen = null;
export function pointRenderer() {
  if (chosen) return chosen;
  let want = "auto";
  try { want = localStorage.getItem(STORE) || "auto"; } catch { /* storage off: auto */ }
  if (!POINT_PATHS.includes(want)) want = "auto";
  let gl = null, renderer = "none";
  if (want !== "pixels") {
    try { gl = GLPoints.create(); } catch (e) { gl = null; renderer = `WebGL2 failed: ${e.message}`; }
    if (gl) renderer = gl.renderer;
  }
  const mode = gl && (want === "webgl" || (want === "auto" && !gl.software)) ? "webgl" : "pixels";
  chosen = { mode, renderer, want, gl: mode === "webgl" ? gl : null };
  window.__pointRenderer = { mode, renderer, want };
  return chosen;
}

// The header's "points" menu: shows the path in use and its renderer; a change is kept and the page reloads.
export function wirePointMenu(select, label) {
  const now = pointRenderer();
  select.value = now.want;
  label.textContent = now.mode === "webgl" ? "(WebGL2)" : "(pixels)";
  label.title = `WebGL2 renderer: ${now.renderer}`;
  select.addEventListener("change", () => {
    if (!POINT_PATHS.includes(select.value)) return;
    try { localStorage.setItem(STORE, select.value); } catch { return; }
    location.reload();
  });
}
