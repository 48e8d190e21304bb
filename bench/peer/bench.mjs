// Prefill and decode speed of llama.cpp (node-llama-cpp 3.21.1, prebuilt CPU binaries) on a GGUF file.
//
//   node bench.mjs --model M.gguf [--threads 2] [--prompt 128] [-n 64] [--reps 5] [--kv f16|f32] [--seed 1]
//
// Each repetition starts from an empty KV cache: prefill = one evaluation of `--prompt` token ids
// (random ids, no tokenizer), decode = `-n` single-token forward passes after it, each followed by
// greedy sampling (temperature 0). One warm-up repetition is discarded. Prints one JSON object with
// the median and all runs of prefill and decode tokens/s.
import {loadPeer} from "./greedy.mjs";

function parseArgs(argv) {
    const o = {threads: 2, prompt: 128, n: 64, reps: 5, kv: "f16", seed: 1, batch: 512};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i], v = () => {
            if (i + 1 >= argv.length) throw new Error(`flag ${a} needs a value`);
            return argv[++i];
        };
        if (a === "--model" || a === "-m") o.model = v();
        else if (a === "--threads" || a === "-t") o.threads = Number(v());
        else if (a === "--prompt") o.prompt = Number(v());
        else if (a === "-n") o.n = Number(v());
        else if (a === "--reps") o.reps = Number(v());
        else if (a === "--kv") o.kv = v();
        else if (a === "--seed") o.seed = Number(v());
        else if (a === "--batch") o.batch = Number(v());
        else throw new Error(`unknown flag ${a}`);
    }
    if (!o.model) throw new Error("--model is required");
    for (const k of ["threads", "prompt", "n", "reps"])
        if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`--${k} must be a positive integer`);
    return o;
}

const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// Deterministic prompt ids (xorshift), avoiding the last ids where special tokens usually sit.
function promptTokens(n, nVocab, seed) {
    let x = (seed * 2654435761) >>> 0 || 1;
    const out = [];
    for (let i = 0; i < n; i++) {
        x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
        out.push(x % Math.max(1, nVocab - 256));
    }
    return out;
}

async function main() {
    const o = parseArgs(process.argv.slice(2));
    const {llama, model, context} = await loadPeer(o.model, {threads: o.threads, kv: o.kv,
        ctx: Math.max(256, o.prompt + o.n + 8), batch: Math.max(o.batch, o.prompt)});
    const seq = context.getSequence();
    // The vocabulary size is the row count of token_embd (ne[1]).
    const embd = model.fileInfo.tensorInfo?.find((t) => t.name === "token_embd.weight");
    if (!embd) throw new Error(`${o.model}: no token_embd.weight tensor`);
    const toks = promptTokens(o.prompt, Number(embd.dimensions[1]), o.seed);
    const prefill = [], decode = [];
    for (let rep = 0; rep <= o.reps; rep++) {
        await seq.clearHistory();
        const t0 = process.hrtime.bigint();
        await seq.evaluateWithoutGeneratingNewTokens(toks);
        const t1 = process.hrtime.bigint();
        let count = 0;
        for await (const _t of seq.evaluate([toks[0]], {temperature: 0, yieldEogToken: true})) {
            if (++count >= o.n) break;
        }
        const t2 = process.hrtime.bigint();
        if (rep === 0) continue;  // warm-up
        prefill.push(o.prompt / (Number(t1 - t0) / 1e9));
        decode.push(o.n / (Number(t2 - t1) / 1e9));
    }
    const res = {
        engine: "llama.cpp (node-llama-cpp 3.21.1)", model: o.model, threads: o.threads, kv: o.kv,
        prompt_tokens: o.prompt, decode_tokens: o.n, reps: o.reps,
        prefill_tok_s: median(prefill), decode_tok_s: median(decode),
        prefill_runs: prefill.map((x) => +x.toFixed(2)), decode_runs: decode.map((x) => +x.toFixed(2)),
    };
    process.stdout.write(JSON.stringify(res) + "\n");
    await context.dispose();
    await model.dispose();
    await llama.dispose();
}

main().catch((e) => {
    process.stderr.write(`bench.mjs: ${e.message}\n`);
    process.exit(1);
});
