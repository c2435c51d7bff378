#!/usr/bin/env node
/*
 * edgeport's Node runner: one process per (model, backend). Commands arrive as JSON lines on
 * stdin, answers leave as JSON lines on stdout prefixed with "@@edgeport " (TF.js itself prints
 * notices on stdout). Tensors travel through files named in the commands, never through pipes.
 *
 *   {"cmd": "load", "model": "/x/model.json", "backend": "wasm"|"cpu", "threads": 1}
 *   {"cmd": "predict", "inputs": [{key, dtype, shape, file}], "n": N, "outputs": [keys], "out_dir": dir}
 *   {"cmd": "time", "inputs": [...], "outputs": [keys], "warmup": W, "runs": R}
 *   {"cmd": "quit"}
 *
 * model.json is untrusted: it is read only if it is at most maxModelJsonBytes, and every shard it
 * names must stay inside the model's folder (after normalising and resolving links), be a regular
 * file and fit the bytes the manifest declares; anything else fails the load before a byte of it
 * is read.
 *
 * Test hook (only when the environment sets it): EDGEPORT_TFJS_TEST_HANG=<cmd> makes the runner
 * stop answering (a busy loop) when it gets that command, as a wedged runtime would.
 */
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');
const {performance} = require('perf_hooks');
const t_start = performance.now();
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const wasm = require('@tensorflow/tfjs-backend-wasm');
const converter = require('@tensorflow/tfjs-converter');
const core = require('./core.js');

const api = Object.assign({}, tf, {loadGraphModel: converter.loadGraphModel, wasm});
let runner = null;

function reply(obj) {
  process.stdout.write('@@edgeport ' + JSON.stringify(obj) + '\n');
}

function readArrayBuffer(file) {
  const buf = fs.readFileSync(file);
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
}

/* Read a regular file of at most maxBytes; refused before reading if larger (or not a file). */
function readBounded(file, maxBytes, what) {
  // O_NONBLOCK: a FIFO planted as a shard must not block the open
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new Error(`${what} is not a regular file`);
    if (st.size > maxBytes) throw new Error(`${what} holds ${st.size} B, more than the ${maxBytes} B allowed`);
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < st.size) {
      const n = fs.readSync(fd, buf, off, st.size - off, off);
      if (n === 0) break;
      off += n;
    }
    if (off !== st.size) throw new Error(`${what} changed while it was read`);
    return buf.buffer.slice(buf.byteOffset, buf.byteOffset + off);
  } finally {
    fs.closeSync(fd);
  }
}

/* A shard inside dir (already real): the normalised relative path, links resolved, confined. */
function shardFile(dir, rel) {
  const real = fs.realpathSync(path.join(dir, rel));
  if (!real.startsWith(dir + path.sep)) throw new Error(`weight file ${rel} leads out of the model folder`);
  return real;
}

function readInputs(specs) {
  return specs.map((s) => ({key: s.key, dtype: s.dtype, shape: s.shape, data: new Uint8Array(readArrayBuffer(s.file))}));
}

async function handle(msg) {
  if (process.env.EDGEPORT_TFJS_TEST_HANG && process.env.EDGEPORT_TFJS_TEST_HANG === msg.cmd) {
    for (;;) { /* test hook: a runner that never answers again */ }
  }
  if (msg.cmd === 'load') {
    const t0 = performance.now();
    const info = await core.setBackend(api, msg.backend, msg.threads || 1);
    const backendMs = performance.now() - t0;
    const maxJson = Math.min(msg.maxModelJsonBytes || core.MAX_MODEL_JSON_BYTES, core.MAX_MODEL_JSON_BYTES);
    const modelJson = JSON.parse(Buffer.from(readBounded(msg.model, maxJson, 'model.json')).toString('utf8'));
    const dir = fs.realpathSync(path.dirname(msg.model));
    const t1 = performance.now();
    const buffers = await core.readWeights(modelJson,
      async (rel, left) => readBounded(shardFile(dir, rel), left, `weight file ${rel}`));
    const loaded = await core.Runner.load(api, modelJson, buffers);
    runner = loaded.runner;
    const loadMs = performance.now() - t1;
    return {ok: true, ...info, backendMs, loadMs, startupMs: t0 - t_start,
            node: process.version, tfjs: tf.version_core};
  }
  if (!runner) throw new Error('no model loaded');
  if (msg.cmd === 'predict') {
    const res = await runner.predict(readInputs(msg.inputs), msg.n, msg.outputs);
    const outputs = res.outputs.map((o, k) => {
      const file = path.join(msg.out_dir, `out${k}.bin`);
      fs.writeFileSync(file, Buffer.from(o.data.buffer, o.data.byteOffset, o.data.byteLength));
      return {key: o.key, dtype: o.dtype, shape: o.shape, file};
    });
    return {ok: true, outputs, totalMs: res.totalMs};
  }
  if (msg.cmd === 'time') {
    const res = await runner.time(readInputs(msg.inputs), msg.outputs, msg.warmup, msg.runs);
    return {ok: true, ...res};
  }
  throw new Error(`unknown command ${msg.cmd}`);
}

const rl = readline.createInterface({input: process.stdin, terminal: false});
let chain = Promise.resolve();
rl.on('line', (line) => {
  if (!line.trim()) return;
  chain = chain.then(async () => {
    let msg;
    try {
      msg = JSON.parse(line);
      if (msg.cmd === 'quit') {
        reply({ok: true});
        process.exit(0);
      }
      reply(await handle(msg));
    } catch (err) {
      reply({ok: false, error: String((err && err.message) || err).split('\n')[0]});
    }
  });
});
rl.on('close', () => chain.then(() => process.exit(0)));
