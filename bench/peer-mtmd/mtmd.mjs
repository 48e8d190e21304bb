// llama.cpp's mtmd (the multimodal library of llama.cpp, through @fugood/llama.node's prebuilt
// linux-x64 CPU binary) on one prompt with images: an independent reference for edgevlm's vision
// families (tests/vlm_family_parity).
//
//   node mtmd.mjs --model M.gguf --mmproj P.gguf --prompt-file F --out OUT.json [--image I]... [-n 8]
//                 [--threads 2] [--top 5]
//
// The prompt is used as given (no chat template): each "<__media__>" is an image, in order.
// Writes one JSON object to OUT.json (the native library logs to stdout):
//   {"prompt_tokens": [...],   // mtmd's tokenized prompt, -1 at every image position
//    "chunk_pos": [...], "chunk_pos_media": [...],
//    "n_prompt": N,            // positions the completion evaluated
//    "steps": [{"content": "…", "top": [["tok_str", prob], ...]}, ...],   // greedy, one per token; top:
//                                                                          // the first step's top-k softmax
//    "text": "…"}
import {createRequire} from "node:module";
import {readFileSync, writeFileSync} from "node:fs";

const require = createRequire(import.meta.url);
const {loadModel} = require("@fugood/llama.node");

function parseArgs(argv) {
    const o = {n: 8, threads: 2, top: 5, images: [], ctx: 4096};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i], v = () => {
            if (i + 1 >= argv.length) throw new Error(`flag ${a} needs a value`);
            return argv[++i];
        };
        if (a === "--model") o.model = v();
        else if (a === "--mmproj") o.mmproj = v();
        else if (a === "--prompt-file") o.prompt = readFileSync(v(), "utf8");
        else if (a === "--image") o.images.push(v());
        else if (a === "--out") o.out = v();
        else if (a === "-n") o.n = Number(v());
        else if (a === "--threads") o.threads = Number(v());
        else if (a === "--top") o.top = Number(v());
        else if (a === "--ctx") o.ctx = Number(v());
        else throw new Error(`unknown flag ${a}`);
    }
    if (!o.model || !o.mmproj || o.prompt === undefined || !o.out)
        throw new Error("--model, --mmproj, --prompt-file and --out are required");
    return o;
}

const o = parseArgs(process.argv.slice(2));
const ctx = await loadModel({model: o.model, n_ctx: o.ctx, n_batch: 2048, n_ubatch: 2048, n_threads: o.threads,
    n_gpu_layers: 0, use_mmap: true, flash_attn_type: "off", cache_type_k: "f32", cache_type_v: "f32"});
if (!(await ctx.initMultimodal({path: o.mmproj, use_gpu: false}))) throw new Error("initMultimodal failed");
const tk = await ctx.tokenize(o.prompt, {media_paths: o.images});
// With temperature 0 the reported probabilities are the greedy sampler's (1 for the pick); the first
// position's distribution is read from a second, one-token completion at temperature 1 with every
// truncation off, so that it is the softmax of the logits.
const first = await ctx.completion({prompt: o.prompt, media_paths: o.images, n_predict: 1, temperature: 1,
    top_k: 0, top_p: 1, min_p: 0, n_probs: o.top, seed: 1, ignore_eos: true});
const res = await ctx.completion({prompt: o.prompt, media_paths: o.images, n_predict: o.n, temperature: 0,
    top_k: 1, n_probs: o.top, seed: 1, ignore_eos: true});
// The binding appends each completion's probabilities to the previous ones': keep the last entries.
const fp = (first.completion_probabilities || []).slice(-1)[0];
const steps = (res.completion_probabilities || []).slice(-res.tokens_predicted).map((p, i) => ({
    content: p.content, top: ((i === 0 && fp ? fp : p).probs || []).map((q) => [q.tok_str, q.prob])}));
writeFileSync(o.out, JSON.stringify({prompt_tokens: Array.from(tk.tokens), chunk_pos: tk.chunk_pos || [],
    chunk_pos_media: tk.chunk_pos_media || [], n_prompt: first.timings ? first.timings.prompt_n : -1,
    steps, text: res.text}) + "\n");
// Exit at once: the prebuilt binding's teardown (ctx.release and its finalizers) has been seen to
// crash now and then after the answer was complete; the process exit frees everything anyway.
process.exit(0);
