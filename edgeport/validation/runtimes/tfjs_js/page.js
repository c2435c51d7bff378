/*
 * The page side of edgeport's Chromium runtime. Python (Playwright) starts a command with
 * window.edgeportStart(msg) and waits, with a deadline, for window.edgeportJob.done. Files come
 * from the local server: the model under /model/, inputs under /io/. Outputs go back base64.
 *
 * model.json is untrusted: every shard URL is built from a checked relative path and must stay
 * under the model's folder on this origin; sizes are checked against the manifest before a body
 * is read (the server also serves only the shards Python checked).
 */
(function () {
  'use strict';
  const core = window.EdgeportTFJS;
  let runner = null;

  async function fetchBuffer(url, maxBytes) {
    const r = await fetch(url);
    if (!r.ok) throw new Error(`GET ${url}: HTTP ${r.status}`);
    if (maxBytes !== undefined) {
      const declared = Number(r.headers.get('Content-Length'));
      if (!(declared <= maxBytes)) throw new Error(`GET ${url}: ${declared} B, more than the ${maxBytes} B allowed`);
    }
    const buf = await r.arrayBuffer();
    if (maxBytes !== undefined && buf.byteLength > maxBytes) throw new Error(`GET ${url}: more than ${maxBytes} B`);
    return buf;
  }

  /* The URL of a checked shard path, refused unless it stays in the model's folder here. */
  function shardUrl(modelUrl, rel) {
    const base = new URL(modelUrl, location.href);
    const dir = base.pathname.slice(0, base.pathname.lastIndexOf('/') + 1);
    const u = new URL(rel, base);
    if (u.origin !== location.origin || !u.pathname.startsWith(dir) || u.search || u.hash) {
      throw new Error(`weight path ${rel} leaves the model folder`);
    }
    return u.pathname;
  }

  async function readInputs(specs) {
    const out = [];
    for (const s of specs) {
      out.push({key: s.key, dtype: s.dtype, shape: s.shape, data: new Uint8Array(await fetchBuffer(s.url))});
    }
    return out;
  }

  function toBase64(typed) {
    const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(s);
  }

  async function handle(msg) {
    if (msg.cmd === 'load') {
      if (msg.testHang === 'load') for (;;) { /* test hook, only when Python's environment asks */ }
      if (msg.backend === 'wasm') tf.wasm.setWasmPaths('/tfjs/tfjs-backend-wasm/dist/');
      const t0 = core.now();
      const info = await core.setBackend(tf, msg.backend, msg.threads || 1);
      const backendMs = core.now() - t0;
      const t1 = core.now();
      const maxJson = Math.min(msg.maxModelJsonBytes || core.MAX_MODEL_JSON_BYTES, core.MAX_MODEL_JSON_BYTES);
      const modelJson = JSON.parse(new TextDecoder().decode(await fetchBuffer(msg.model, maxJson)));
      const buffers = await core.readWeights(modelJson, (rel, left) => fetchBuffer(shardUrl(msg.model, rel), left));
      const loaded = await core.Runner.load(tf, modelJson, buffers);
      runner = loaded.runner;
      const loadMs = core.now() - t1;
      let browser = navigator.userAgent;  // reduced to "Chrome/NNN.0.0.0"; ask for the full one
      if (navigator.userAgentData && navigator.userAgentData.getHighEntropyValues) {
        const hv = await navigator.userAgentData.getHighEntropyValues(['fullVersionList']);
        const b = (hv.fullVersionList || []).find((x) => /Chrom/.test(x.brand));
        if (b) browser = `${b.brand} ${b.version}`;
      }
      return {ok: true, ...info, backendMs, loadMs, tfjs: tf.version_core, browser,
              crossOriginIsolated: self.crossOriginIsolated === true};
    }
    if (!runner) throw new Error('no model loaded');
    if (msg.testHang === msg.cmd) for (;;) { /* test hook, as above */ }
    if (msg.cmd === 'predict') {
      const res = await runner.predict(await readInputs(msg.inputs), msg.n, msg.outputs);
      return {ok: true, totalMs: res.totalMs,
              outputs: res.outputs.map((o) => ({key: o.key, dtype: o.dtype, shape: o.shape, b64: toBase64(o.data)}))};
    }
    if (msg.cmd === 'time') {
      return {ok: true, ...(await runner.time(await readInputs(msg.inputs), msg.outputs, msg.warmup, msg.runs))};
    }
    throw new Error(`unknown command ${msg.cmd}`);
  }

  window.edgeportJob = {done: true};
  window.edgeportStart = function (msg) {
    window.edgeportJob = {done: false};
    // run after this evaluate returns: a job that blocks the page must not block the caller
    setTimeout(() => handle(msg).then(
      (result) => { window.edgeportJob = {done: true, result}; },
      (err) => { window.edgeportJob = {done: true, result: {ok: false, error: String((err && err.message) || err)}}; }), 0);
  };
  window.edgeportReady = true;
})();
