// Load on `edgevlm serve` (loopback only, bounded in clients and time): K clients for T seconds
// sending a mix of text and image questions as conversations of a few turns; alongside them,
// clients that disconnect mid-stream, oversized bodies and a slow client trickling a byte a second.
// Reports p50/p99 time to first token, decode tokens/s, errors by kind and RSS over the run
// (sampled from /metrics); then time to first token with and without the decoupled upload
// (POST /v1/images while the user "types") for a simulated typing delay.
//
//   node bench/server_load.mjs --url http://127.0.0.1:8080 [--clients 4] [--seconds 60] [--typing-ms 1500]
//                              [--conversation-header] [--phase upload|inline] [--json out.json]
import { connect } from "node:net";
import { readFileSync, writeFileSync } from "node:fs";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1] && !all[i + 1].startsWith("--") ? all[i + 1] : "1"]);
  return acc;
}, []));
const URL_ = args.url || "http://127.0.0.1:8080";
const CLIENTS = Number(args.clients || 4);
const SECONDS = Number(args.seconds || 60);
const TYPING_MS = Number(args["typing-ms"] || 1500);
const ROOT = new URL("..", import.meta.url).pathname;
const images = ["banner.png", "receipt.png", "chart.png", "shapes.png", "code.png"].map((f) => readFileSync(ROOT + "examples/" + f));
const questions = { "banner.png": "What does the banner say?", "receipt.png": "What is the total?", "chart.png": "Which bar is the tallest?",
                    "shapes.png": "How many shapes are there?", "code.png": "What does the code print?" };
const imageNames = Object.keys(questions);
const textQuestions = ["What is 12 + 7?", "Spell the word cat backwards.", "What colour is the sky?", "Name a fruit."];

const pct = (xs, p) => { if (!xs.length) return NaN; const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
const median = (xs) => pct(xs, 0.5);
const log = (msg) => { if (process.env.VERBOSE) console.error(msg); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function metric(name) {
  const text = await (await fetch(URL_ + "/metrics")).text();
  const m = text.match(new RegExp("^" + name + " ([0-9.e+-]+)$", "m"));
  return m ? Number(m[1]) : NaN;
}

// One streamed chat request; resolves with its time to first token, tokens/s and status.
async function ask(messages, { abortAfterTokens = 0, headers = {} } = {}) {
  const ctrl = new AbortController();
  const t0 = performance.now();
  let res;
  try {
    res = await fetch(URL_ + "/v1/chat/completions", {
      method: "POST", signal: ctrl.signal, headers: { "Content-Type": "application/json", ...headers },
      body: JSON.stringify({ messages, stream: true, max_tokens: 32, temperature: 0 }),
    });
  } catch (e) { return { status: "network", error: String(e) }; }
  if (res.status !== 200) { await res.text(); return { status: res.status }; }
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "", text = "", ttft = null, tokens = 0, timings = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let at;
      while ((at = buf.indexOf("\n\n")) >= 0) {
        const line = buf.slice(0, at); buf = buf.slice(at + 2);
        if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
        const j = JSON.parse(line.slice(6));
        if (j.error) return { status: "stream-error", error: j.error.message };
        const piece = j.choices?.[0]?.delta?.content;
        if (piece) {
          if (ttft === null) ttft = performance.now() - t0;
          text += piece;
          if (abortAfterTokens && ++tokens >= abortAfterTokens) { ctrl.abort(); return { status: "aborted" }; }
        }
        if (j.timings) timings = j.timings;
      }
    }
  } catch (e) { return { status: abortAfterTokens ? "aborted" : "network", error: String(e) }; }
  return { status: 200, ttft: ttft ?? performance.now() - t0, text, decodeTokS: timings?.predicted_per_second ?? NaN,
           cached: timings?.cached_n ?? 0 };
}

function dataUri(buf) { return "data:image/png;base64," + buf.toString("base64"); }

// A client: conversations of up to three turns, every other one about an image.
async function client(id, until, stats) {
  let conv = 0;
  while (performance.now() < until) {
    const headers = args["conversation-header"] ? { "X-Conversation-Id": `c${id}-${conv}` } : {};
    const withImage = (id + conv) % 2 === 0;
    const k = (id * 7 + conv) % imageNames.length;
    const messages = [];
    for (let turn = 0; turn < 3 && performance.now() < until; ++turn) {
      const content = turn === 0 && withImage
        ? [{ type: "text", text: questions[imageNames[k]] }, { type: "image_url", image_url: { url: dataUri(images[k]) } }]
        : textQuestions[(id + conv + turn) % textQuestions.length];
      messages.push({ role: "user", content });
      const r = await ask(messages, { headers });
      stats.requests++;
      if (r.status === 200) {
        stats.ttft.push(r.ttft);
        if (Number.isFinite(r.decodeTokS)) stats.tokS.push(r.decodeTokS);
        if (r.cached > 0) stats.cacheHits++;
        messages.push({ role: "assistant", content: r.text });
      } else if (r.status === 429) {
        stats.rejected++;
        await sleep(1000);  // Retry-After
        break;
      } else {
        stats.errors.push(r.status + (r.error ? ": " + r.error : ""));
        break;
      }
    }
    ++conv;
  }
}

// Clients that go away after three tokens, every few seconds.
async function disconnecters(until, stats) {
  while (performance.now() < until) {
    const r = await ask([{ role: "user", content: "Tell me about the sea." }], { abortAfterTokens: 3 });
    if (r.status === "aborted" || r.status === 200) stats.disconnects++;
    else if (r.status === 429) stats.rejected++;
    else stats.errors.push("disconnecter " + r.status);
    await sleep(3000);
  }
}

// A body over the limit must get 413 (and not be read in full).
async function oversized(stats) {
  const body = JSON.stringify({ messages: [{ role: "user", content: "x".repeat(40 << 20) }] });
  try {
    const r = await fetch(URL_ + "/v1/chat/completions", { method: "POST", headers: { "Content-Type": "application/json" }, body });
    stats.oversized = r.status;
    await r.text();
  } catch (e) { stats.oversized = "closed: " + e.cause?.code; }
}

// A client that sends a request body a byte a second: the server must cut it off (408 or a
// closed connection) within its request timeout, while the others go on.
function slowClient(stats) {
  return new Promise((resolve) => {
    const u = new URL(URL_);
    const t0 = performance.now();
    const sock = connect(Number(u.port), u.hostname, () => {
      sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n`);
      const timer = setInterval(() => sock.write("{"), 1000);
      let reply = "";
      sock.on("data", (d) => { reply += d.toString(); if (/^HTTP\/1\.1 \d+/.test(reply)) sock.destroy(); });
      const done = () => {
        clearInterval(timer);
        if (stats.slow) return;
        stats.slow = { status: (reply.match(/^HTTP\/1\.1 (\d+)/) || [, "closed"])[1], seconds: (performance.now() - t0) / 1000 };
        resolve();
      };
      sock.on("close", done);
      sock.on("error", () => {});
      setTimeout(() => { if (!stats.slow) { stats.slow = { status: "still open", seconds: (performance.now() - t0) / 1000 }; sock.destroy(); } }, 120000).unref();
    });
  });
}

// Time to first token for a question about each example image, the user typing for TYPING_MS
// after picking the image. Run each phase on a fresh server, so that no image is cached:
//   upload: POST /v1/images when the image is picked (encoding starts), then ask by id;
//   inline: the image goes with the question, as with other servers (encoded after the typing).
async function timeToFirstToken(upload) {
  const out = [];
  for (let i = 0; i < images.length; ++i) {
    const t0 = performance.now();
    let url = dataUri(images[i]);
    if (upload) {
      const up = await fetch(URL_ + "/v1/images", { method: "POST", headers: { "Content-Type": "image/png" }, body: images[i] });
      url = (await up.json()).id;
    }
    const left = TYPING_MS - (performance.now() - t0);
    if (left > 0) await sleep(left);
    const a = await ask([{ role: "user", content: [{ type: "text", text: questions[imageNames[i]] },
                                                    { type: "image_url", image_url: { url } }] }]);
    if (a.status === 200) out.push(a.ttft);
  }
  return out;
}

async function main() {
  const report = { url: URL_, clients: CLIENTS, seconds: SECONDS, typingMs: TYPING_MS };
  if (args.phase === "upload" || args.phase === "inline") {
    report.phase = args.phase;
    report.ttftMs = await timeToFirstToken(args.phase === "upload");
    report.ttftMedianMs = median(report.ttftMs);
  } else {
    const stats = { requests: 0, rejected: 0, errors: [], ttft: [], tokS: [], cacheHits: 0, disconnects: 0 };
    const rss = [];
    const until = performance.now() + SECONDS * 1000;
    let sampling = true;
    const sampler = (async () => { while (sampling) { rss.push(await metric("edgevlm_process_resident_bytes")); await sleep(500); } })();
    await Promise.all([
      ...Array.from({ length: CLIENTS }, (_, i) => client(i, until, stats).then(() => log(`client ${i} done`))),
      disconnecters(until, stats).then(() => log("disconnecters done")), oversized(stats).then(() => log("oversized done")),
      // Behind nginx the slow client talks to nginx, which buffers bodies (it never reaches an engine
      // connection) and has no deadline for a whole body: --no-slow-client there.
      args["no-slow-client"] ? Promise.resolve() : slowClient(stats).then(() => log("slow client done")),
    ]);
    sampling = false;
    await sampler;
    const third = Math.max(1, Math.floor(rss.length / 3));
    const mib = (x) => x / 1048576;
    Object.assign(report, {
      requests: stats.requests, answered: stats.ttft.length, rejected429: stats.rejected, errors: stats.errors,
      disconnects: stats.disconnects, promptCacheHits: stats.cacheHits, oversized: stats.oversized, slowClient: stats.slow ?? null,
      ttftP50Ms: median(stats.ttft), ttftP99Ms: pct(stats.ttft, 0.99), decodeTokSMedian: median(stats.tokS),
      rssMiB: { afterWarmup: mib(Math.max(...rss.slice(third, 2 * third))), end: mib(Math.max(...rss.slice(2 * third))),
                max: mib(Math.max(...rss)), samples: rss.length },
      cancelledServerSide: await metric("edgevlm_requests_cancelled_total"),
    });
  }
  const text = JSON.stringify(report, null, 2);
  console.log(text);
  if (args.json) writeFileSync(args.json, text);
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
