// Greedy generation with llama.cpp (through node-llama-cpp 3.21.1, its prebuilt CPU binaries) from a
// list of token ids: no tokenizer is involved on either side of a parity check.
//
//   node greedy.mjs --model M.gguf --tokens 1,2,3 [-n 16] [--threads 2] [--kv f32|f16] [--top 2]
//                   [--force 7,8,9] [--lora ADAPTER.gguf[:SCALE] ...] [--dump-logprobs FILE]
//
// --lora: a LoRA adapter (llama.cpp's GGUF adapter format) on the context, scale 1 unless given;
// repeatable. --dump-logprobs: llama.cpp's log-probabilities of every token at the first step (the
// distribution after the prompt), written as little-endian float64 (n_vocab values; -Infinity where
// a probability is 0; as many as the highest id listed + 1), so that a parity check can compare whole distributions, not just the top-k.
//
// --force: teacher forcing — after each step, feed the given id instead of llama.cpp's own pick, so
// that llama.cpp's choice is reported at every step of another engine's sequence (n = its length).
// Prints one JSON object: {"prompt": [...], "tokens": [...generated ids...], "steps": [{"token",
// "top": [[id, logprob], ...]}, ...]}. The top-k log-probabilities come from llama.cpp's own softmax
// of the logits (temperature 1 over the full vocabulary), so logprob differences are logit differences;
// a parity check uses them to recognise near-ties.
import fs from "node:fs";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

// "FILE" or "FILE:SCALE" (the part after the last colon is the scale when it is a number).
function parseLora(spec) {
    const i = spec.lastIndexOf(":");
    const scale = i > 0 ? Number(spec.slice(i + 1)) : NaN;
    if (i > 0 && spec.slice(i + 1).trim() !== "" && Number.isFinite(scale))
        return {filePath: spec.slice(0, i), scale};
    return {filePath: spec, scale: 1};
}

function parseArgs(argv) {
    const o = {n: 16, threads: 2, kv: "f32", top: 0, ctx: 0, lora: []};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i], v = () => {
            if (i + 1 >= argv.length) throw new Error(`flag ${a} needs a value`);
            return argv[++i];
        };
        if (a === "--model" || a === "-m") o.model = v();
        else if (a === "--tokens") o.tokens = v().split(",").filter((s) => s.trim() !== "").map(Number);
        else if (a === "-n") o.n = Number(v());
        else if (a === "--threads" || a === "-t") o.threads = Number(v());
        else if (a === "--kv") o.kv = v();
        else if (a === "--top") o.top = Number(v());
        else if (a === "--ctx") o.ctx = Number(v());
        else if (a === "--force") o.force = v().split(",").filter((s) => s.trim() !== "").map(Number);
        else if (a === "--lora") o.lora.push(parseLora(v()));
        else if (a === "--dump-logprobs") o.dumpLogprobs = v();
        else throw new Error(`unknown flag ${a}`);
    }
    if (!o.model) throw new Error("--model is required");
    if (!o.tokens || o.tokens.length === 0 || o.tokens.some((t) => !Number.isInteger(t) || t < 0))
        throw new Error("--tokens needs a comma-separated list of non-negative token ids");
    if (!["f32", "f16"].includes(o.kv)) throw new Error("--kv must be f32 or f16");
    if (o.force) {
        if (o.force.some((t) => !Number.isInteger(t) || t < 0)) throw new Error("--force needs token ids");
        o.n = o.force.length;
    }
    return o;
}

export async function loadPeer(modelPath, {threads, kv = "f32", ctx = 0, batch = 512, lora = []}) {
    // build:"never" and skipDownload: use the prebuilt binaries shipped in the npm package, never try
    // to compile or fetch llama.cpp at run time; gpu:false keeps everything on the CPU.
    const llama = await getLlama({gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true,
        logLevel: LlamaLogLevel.error, maxThreads: threads, progressLogs: false});
    const model = await llama.loadModel({modelPath, gpuLayers: 0, useMmap: true});
    const kvType = kv.toUpperCase();
    const context = await model.createContext({
        contextSize: ctx > 0 ? ctx : Math.min(model.trainContextSize, 2048),
        batchSize: batch, threads: {ideal: threads, min: threads}, sequences: 1, flashAttention: false,
        experimentalKvCacheKeyType: kvType, experimentalKvCacheValueType: kvType,
        ...(lora.length > 0 ? {lora: {adapters: lora}} : {}),
    });
    return {llama, model, context};
}

function topK(probabilities, k) {
    if (!probabilities || k <= 0) return undefined;
    const arr = [...probabilities.entries()].sort((a, b) => b[1] - a[1]).slice(0, k);
    return arr.map(([id, p]) => [id, Math.log(p)]);
}

async function main() {
    const o = parseArgs(process.argv.slice(2));
    const {llama, model, context} = await loadPeer(o.model, o);
    const seq = context.getSequence();
    const out = {prompt: o.tokens, tokens: [], steps: [], n_vocab: model.tokens ? undefined : undefined};
    // temperature 0: llama.cpp's greedy sampler (argmax of the logits). yieldEogToken: a random model
    // may pick <|endoftext|>, which must count as a generated token, not end the run.
    const it = seq.evaluateWithMetadata(o.tokens, {probabilities: o.top > 0 || o.dumpLogprobs != null},
        {temperature: 0, yieldEogToken: true});
    // The generator protocol: next(id) makes `id` the next token fed to the model.
    let step = await it.next();
    while (!step.done) {
        const r = step.value;
        out.tokens.push(r.token);
        if (o.dumpLogprobs != null && out.tokens.length === 1) {
            let n = 0;
            for (const id of r.probabilities.keys()) n = Math.max(n, id + 1);
            const lp = new Float64Array(n).fill(-Infinity);
            for (const [id, p] of r.probabilities.entries()) if (id < lp.length) lp[id] = Math.log(p);
            fs.writeFileSync(o.dumpLogprobs, Buffer.from(lp.buffer));
        }
        if (o.top > 0) out.steps.push({token: r.token, top: topK(r.probabilities, o.top)});
        if (out.tokens.length >= o.n) break;
        step = await it.next(o.force ? o.force[out.tokens.length - 1] : undefined);
    }
    await it.return();
    if (o.force) out.forced = o.force;
    if (o.top <= 0) delete out.steps;
    delete out.n_vocab;
    process.stdout.write(JSON.stringify(out) + "\n");
    await context.dispose();
    await model.dispose();
    await llama.dispose();
}

if (import.meta.url === `file://${process.argv[1]}`) {
    main().catch((e) => {
        process.stderr.write(`greedy.mjs: ${e.message}\n`);
        process.exit(1);
    });
}
