// run.js - ONNX Runtime (npm onnxruntime-node, CPU) as the deploying-side reference of
// Lopper's ONNX tests: runs models on inputs given as raw little-endian float32 files
// and writes their outputs the same way, so the Lua side needs no ONNX Runtime binding.
//
//   node tests/ort/run.js MODEL.onnx INPUT.f32 2x3x64x64 OUTPUT.f32    one job
//   node tests/ort/run.js JOBS.json                                   many jobs
//
// A job file is {"threads": n, "jobs": [job, ...]}; one process runs them all (and
// creates each model's session once), since starting Node and a session costs more
// than a small forward pass.  A job is
//
//   {"model": "m.onnx", "input": "x.f32", "shape": [N, C, H, W], "output": "y.f32"}
//
// with optionally "batch": B, to run the N samples B at a time (the model's batch
// dimension must be symbolic, as Lopper writes it), and "argmax": "p.i32", to write
// each sample's index of its largest output (first one on ties) as little-endian int32:
// how a test set is classified.  "output" may be left out when "argmax" is given.
// Inputs are fed to the model's first input, the first output is the one written.
// For each job one JSON line goes to stdout: {"job", "model", "shape" (of the output),
// "seconds"}.  Any error ends the process with status 1 and a message on stderr.
// Threads: "threads" in the job file, else $ORT_THREADS, else 1.
'use strict';

const fs = require('fs');
const os = require('os');
const ort = require('onnxruntime-node');

function fail(msg) {
  process.stderr.write('run.js: ' + msg + '\n');
  process.exit(1);
}

function numel(shape) {
  return shape.reduce((a, b) => a * b, 1);
}

function checkShape(shape, where) {
  if (!Array.isArray(shape) || shape.length < 1 ||
      !shape.every((d) => Number.isInteger(d) && d > 0))
    fail(where + ': shape must be a list of positive integers, got ' + JSON.stringify(shape));
}

function readFloats(path, shape) {
  const buf = fs.readFileSync(path);
  const want = numel(shape) * 4;
  if (buf.length !== want)
    fail(`${path}: ${buf.length} bytes, but shape [${shape}] needs ${want}`);
  const out = new Float32Array(numel(shape));   // a copy: aligned, owned
  for (let i = 0; i < out.length; i++) out[i] = buf.readFloatLE(4 * i);
  return out;
}

function writeFloats(path, data) {
  const buf = Buffer.alloc(data.length * 4);
  for (let i = 0; i < data.length; i++) buf.writeFloatLE(data[i], 4 * i);
  fs.writeFileSync(path, buf);
}

function writeInts(path, data) {
  const buf = Buffer.alloc(data.length * 4);
  for (let i = 0; i < data.length; i++) buf.writeInt32LE(data[i], 4 * i);
  fs.writeFileSync(path, buf);
}

const sessions = new Map();
async function session(model, threads) {
  if (!sessions.has(model)) {
    try {
      sessions.set(model, await ort.InferenceSession.create(model, {
        executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1,
      }));
    } catch (e) {
      fail(`${model}: ONNX Runtime refused the model: ${e.message}`);
    }
  }
  return sessions.get(model);
}

async function runJob(job, index, threads) {
  const where = 'job ' + (index + 1);
  for (const key of ['model', 'input'])
    if (typeof job[key] !== 'string') fail(`${where}: "${key}" must be a path`);
  if (job.output === undefined && job.argmax === undefined)
    fail(`${where}: give "output", "argmax" or both`);
  checkShape(job.shape, where);
  const n = job.shape[0], sample = numel(job.shape.slice(1));
  const batch = job.batch === undefined ? n : job.batch;
  if (!Number.isInteger(batch) || batch < 1) fail(`${where}: "batch" must be a positive integer`);
  const sess = await session(job.model, threads);
  const x = readFloats(job.input, job.shape);
  const start = process.hrtime.bigint();
  let outs = null, outShape = null, perSample = 0;
  for (let lo = 0; lo < n; lo += batch) {
    const b = Math.min(batch, n - lo);
    const feed = {};
    feed[sess.inputNames[0]] = new ort.Tensor('float32', x.subarray(lo * sample, (lo + b) * sample),
                                              [b].concat(job.shape.slice(1)));
    let result;
    try {
      result = await sess.run(feed);
    } catch (e) {
      fail(`${job.model}: ${where}: ONNX Runtime failed: ${e.message}`);
    }
    const y = result[sess.outputNames[0]];
    if (y.type !== 'float32') fail(`${job.model}: the output is ${y.type}, not float32`);
    if (y.dims[0] !== b) fail(`${job.model}: output batch ${y.dims[0]} for an input batch of ${b}`);
    if (outs === null) {
      perSample = numel(y.dims.slice(1));
      outShape = [n].concat(y.dims.slice(1));
      outs = new Float32Array(n * perSample);
    }
    outs.set(y.data, lo * perSample);
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (job.output !== undefined) writeFloats(job.output, outs);
  if (job.argmax !== undefined) {
    const pred = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let k = 1; k < perSample; k++)
        if (outs[i * perSample + k] > outs[i * perSample + best]) best = k;
      pred[i] = best;
    }
    writeInts(job.argmax, pred);
  }
  process.stdout.write(JSON.stringify({job: index + 1, model: job.model, shape: outShape,
                                       seconds: seconds}) + '\n');
}

async function main() {
  if (os.endianness() !== 'LE') fail('this host is big-endian; the files are little-endian');
  const argv = process.argv.slice(2);
  let spec;
  if (argv.length === 1) {
    try {
      spec = JSON.parse(fs.readFileSync(argv[0], 'utf8'));
    } catch (e) {
      fail(`${argv[0]}: ${e.message}`);
    }
  } else if (argv.length === 4) {
    const shape = argv[2].split('x').map(Number);
    spec = {jobs: [{model: argv[0], input: argv[1], shape: shape, output: argv[3]}]};
  } else {
    fail('usage: node run.js MODEL.onnx INPUT.f32 NxCxHxW OUTPUT.f32 | node run.js JOBS.json');
  }
  if (!spec || !Array.isArray(spec.jobs)) fail('a job file is {"jobs": [...]}');
  const threads = spec.threads || Number(process.env.ORT_THREADS) || 1;
  if (!Number.isInteger(threads) || threads < 1) fail('"threads" must be a positive integer');
  for (let i = 0; i < spec.jobs.length; i++) await runJob(spec.jobs[i], i, threads);
}

main().catch((e) => fail(e.stack || String(e)));
