/*
 * edgeport's TF.js runner core, shared by the Node runner (node_runner.js) and the Chromium page
 * (page.js). It never touches files or the network itself: the caller hands it model.json, the
 * weight bytes and the input bytes, so the same code runs in both places.
 *
 * model.json is untrusted data: weightLayout() checks its manifest before anything is read, and
 * the callers confine and size-check every shard with it (Python checked them too, first).
 *
 * A request names inputs as {key, dtype, shape, data} where `data` holds N samples back to back
 * (each sample of `shape`, batch axis 1) and outputs by their signature keys; every sample is run
 * on its own, as a page would.
 */
(function (root, factory) {
  if (typeof module === 'object' && module.exports) {
    module.exports = factory();
  } else {
    root.EdgeportTFJS = factory();
  }
})(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());

  const TYPED = {float32: Float32Array, int32: Int32Array, bool: Uint8Array};

  /* Bytes per value in weight shards (tfjs-core's DTYPE_VALUE_SIZE_MAP); string weights are refused. */
  const WEIGHT_BYTES = {float32: 4, int32: 4, bool: 1, complex64: 8};
  const QUANT_BYTES = {uint8: 1, uint16: 2, float16: 2};
  const MAX_MODEL_JSON_BYTES = 64 * 1024 * 1024;

  const isObject = (x) => x !== null && typeof x === 'object' && !Array.isArray(x);

  /* A manifest path as a normalised relative "/"-path inside the model folder, or an error:
   * absolute, ".." left after normalising, backslash, control characters, "%", "?", "#". */
  function shardPath(p) {
    if (typeof p !== 'string' || p.length === 0 || p.length > 1024) throw new Error('weight path is not a short non-empty string');
    if (/[\x00-\x1f\x7f\\%?#]/.test(p)) throw new Error(`weight path ${JSON.stringify(p.slice(0, 60))} holds a backslash, control character, '%', '?' or '#'`);
    if (p.startsWith('/')) throw new Error(`weight path ${JSON.stringify(p.slice(0, 60))} is absolute`);
    const parts = [];
    for (const seg of p.split('/')) {
      if (seg === '' || seg === '.') continue;
      if (seg === '..') {
        if (parts.length === 0) throw new Error(`weight path ${JSON.stringify(p.slice(0, 60))} leaves the model folder`);
        parts.pop();
      } else {
        parts.push(seg);
      }
    }
    if (parts.length === 0) throw new Error(`weight path ${JSON.stringify(p.slice(0, 60))} names the model folder itself`);
    return parts.join('/');
  }

  function weightBytes(w) {
    if (!isObject(w) || typeof w.name !== 'string' || !Array.isArray(w.shape)) throw new Error('malformed weight entry');
    let n = 1;
    for (const d of w.shape) {
      if (!Number.isSafeInteger(d) || d < 0) throw new Error(`weight ${w.name}: bad dimension ${d}`);
      n *= d;
    }
    const q = w.quantization;
    const per = (q === undefined || q === null) ? WEIGHT_BYTES[w.dtype] : (isObject(q) ? QUANT_BYTES[q.dtype] : undefined);
    if (per === undefined) throw new Error(`weight ${w.name}: unsupported dtype`);
    if (!Number.isSafeInteger(n * per)) throw new Error(`weight ${w.name}: too large`);
    return n * per;
  }

  /* The manifest checked: per group, its normalised shard paths and the bytes its weights declare
   * (a group's shards must add up to exactly that). */
  function weightLayout(modelJson) {
    if (!isObject(modelJson) || !Array.isArray(modelJson.weightsManifest)) throw new Error('model.json has no weightsManifest array');
    return modelJson.weightsManifest.map((g, i) => {
      if (!isObject(g) || !Array.isArray(g.paths) || !Array.isArray(g.weights)) throw new Error(`weightsManifest[${i}] is malformed`);
      return {paths: g.paths.map(shardPath), bytes: g.weights.reduce((s, w) => s + weightBytes(w), 0)};
    });
  }

  /* Read every group's shards with readShard(relPath, bytesLeftInGroup) -> ArrayBuffer (which must
   * refuse a shard larger than bytesLeftInGroup before reading it); sizes checked against the
   * manifest. */
  async function readWeights(modelJson, readShard) {
    const buffers = [];
    for (const [i, group] of weightLayout(modelJson).entries()) {
      let left = group.bytes;
      for (const rel of group.paths) {
        const buf = await readShard(rel, left);
        if (buf.byteLength > left) throw new Error(`weight file ${rel} exceeds the bytes group ${i} declares`);
        left -= buf.byteLength;
        buffers.push(buf);
      }
      if (left !== 0) throw new Error(`weight files of group ${i} hold ${group.bytes - left} B, its weights declare ${group.bytes} B`);
    }
    return buffers;
  }

  function concatBuffers(buffers) {
    const total = buffers.reduce((s, b) => s + b.byteLength, 0);
    const out = new Uint8Array(total);
    let off = 0;
    for (const b of buffers) {
      out.set(new Uint8Array(b), off);
      off += b.byteLength;
    }
    return out.buffer;
  }

  /* An IOHandler that hands TF.js model.json and weights already in memory: Node's fetch cannot
   * read file:// URLs, and the page gets its bytes from our own server. */
  function memoryHandler(modelJson, weightBuffers) {
    return {
      load: async () => {
        const specs = [];
        for (const group of modelJson.weightsManifest) specs.push(...group.weights);
        return {
          modelTopology: modelJson.modelTopology,
          format: modelJson.format,
          generatedBy: modelJson.generatedBy,
          convertedBy: modelJson.convertedBy,
          signature: modelJson.signature,
          userDefinedMetadata: modelJson.userDefinedMetadata,
          modelInitializer: modelJson.modelInitializer,
          initializerSignature: modelJson.initializerSignature,
          weightSpecs: specs,
          weightData: concatBuffers(weightBuffers),
        };
      },
    };
  }

  /* Pick the backend before anything else runs; the wasm backend is single-threaded unless
   * more threads are asked for (and the page is cross-origin isolated). */
  async function setBackend(tf, name, threads) {
    if (name === 'wasm') {
      if (threads <= 1) tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
      else if (tf.wasm && tf.wasm.setThreadsCount) tf.wasm.setThreadsCount(threads);
    }
    const ok = await tf.setBackend(name);
    if (!ok) throw new Error(`TF.js backend ${name} failed to initialise`);
    await tf.ready();
    const info = {backend: tf.getBackend(), version: tf.version_core || (tf.version && tf.version['tfjs-core'])};
    if (name === 'wasm') {
      info.simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
      info.multithread = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
      info.threads = tf.wasm && tf.wasm.getThreadsCount ? tf.wasm.getThreadsCount() : 1;
    } else {
      info.threads = 1;
    }
    return info;
  }

  class Runner {
    constructor(tf, model) {
      this.tf = tf;
      this.model = model;
      this.async = false; // set once a graph turns out to need executeAsync (control flow)
      this.firstRunMs = null; // the cold first inference (kernels compiled, weights laid out)
    }

    static async load(tf, modelJson, weightBuffers) {
      const t0 = now();
      const model = await tf.loadGraphModel(memoryHandler(modelJson, weightBuffers));
      return {runner: new Runner(tf, model), loadMs: now() - t0};
    }

    /* One inference: feed {key: tensor}, outputs read back to typed arrays. */
    async runOnce(feed, outputKeys) {
      const t0 = this.firstRunMs === null ? now() : 0;
      const result = await this.execute(feed, outputKeys);
      if (this.firstRunMs === null) this.firstRunMs = now() - t0;
      return result;
    }

    async execute(feed, outputKeys) {
      let outs;
      if (!this.async) {
        try {
          outs = this.model.execute(feed, outputKeys);
        } catch (err) {
          if (!/executeAsync/.test(String(err && err.message))) throw err;
          this.async = true;
        }
      }
      if (this.async) outs = await this.model.executeAsync(feed, outputKeys);
      if (!Array.isArray(outs)) outs = [outs];
      const result = [];
      for (const t of outs) {
        result.push({dtype: t.dtype, shape: t.shape, data: await t.data()});
        t.dispose();
      }
      return result;
    }

    makeFeed(inputs, i) {
      const feed = {};
      for (const inp of inputs) {
        const per = inp.shape.reduce((a, b) => a * b, 1);
        const Typed = TYPED[inp.dtype];
        if (!Typed) throw new Error(`unsupported input dtype ${inp.dtype} for ${inp.key}`);
        const view = new Typed(inp.data.buffer, inp.data.byteOffset + i * per * Typed.BYTES_PER_ELEMENT, per);
        feed[inp.key] = this.tf.tensor(view, inp.shape, inp.dtype);
      }
      return feed;
    }

    disposeFeed(feed) {
      for (const k of Object.keys(feed)) feed[k].dispose();
    }

    /* Run n samples one by one; returns per output {dtype, shape (of one sample), data (all)}. */
    async predict(inputs, n, outputKeys) {
      const chunks = outputKeys.map(() => []);
      const meta = [];
      const t0 = now();
      for (let i = 0; i < n; i++) {
        const feed = this.makeFeed(inputs, i);
        const outs = await this.runOnce(feed, outputKeys);
        this.disposeFeed(feed);
        outs.forEach((o, k) => {
          chunks[k].push(o.data);
          meta[k] = {dtype: o.dtype, shape: o.shape};
        });
      }
      const outputs = meta.map((m, k) => {
        const Typed = TYPED[m.dtype] || Float32Array;
        const per = chunks[k].length ? chunks[k][0].length : 0;
        const all = new Typed(per * n);
        chunks[k].forEach((c, i) => all.set(c, i * per));
        return {key: outputKeys[k], dtype: m.dtype, shape: m.shape, data: all};
      });
      return {outputs, totalMs: now() - t0};
    }

    /* Latency measured here, inside the runtime: warm-up runs, then each timed run alone. */
    async time(inputs, outputKeys, warmup, runs) {
      const feed = this.makeFeed(inputs, 0);
      for (let i = 0; i < warmup; i++) await this.runOnce(feed, outputKeys);
      const times = [];
      for (let i = 0; i < runs; i++) {
        const t = now();
        await this.runOnce(feed, outputKeys);
        times.push(now() - t);
      }
      this.disposeFeed(feed);
      return {timesMs: times, firstMs: this.firstRunMs, numTensors: this.tf.memory().numTensors};
    }
  }

  return {Runner, setBackend, memoryHandler, concatBuffers, now, shardPath, weightLayout, readWeights, MAX_MODEL_JSON_BYTES};
});
