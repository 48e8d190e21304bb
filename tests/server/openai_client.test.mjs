// edgevlm serve against the official `openai` npm client: models, plain and streamed answers,
// images inline and uploaded (the decoupled path), errors as the client's typed exceptions, the
// queue's 429, a client that goes away mid-answer, and SIGTERM while an answer streams.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import OpenAI from "openai";
import { startServer, metric, nano, randomModel, ROOT } from "./lib.mjs";

const IMAGE = ROOT + "examples/";
let srv, client;
const png = (name) => readFileSync(IMAGE + name);
const dataUri = (name) => "data:image/png;base64," + png(name).toString("base64");

before(async () => {
  srv = await startServer([...nano, "--slots", "2", "--api-key", "test-key"]);
  client = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "test-key", maxRetries: 0 });
});
after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, srv.log()); });

test("lists the model", async () => {
  const models = await client.models.list();
  assert.equal(models.data[0].id, "edgevlm-nano.gguf");
});

test("answers a question about an image, whole and streamed alike", async () => {
  const messages = [{ role: "user", content: [
    { type: "text", text: "What does the banner say?" },
    { type: "image_url", image_url: { url: dataUri("banner.png") } }] }];
  const whole = await client.chat.completions.create({ model: "x", messages, max_tokens: 16, temperature: 0 });
  assert.equal(whole.object, "chat.completion");
  assert.ok(whole.choices[0].message.content.length > 0);
  assert.ok(whole.usage.prompt_tokens > 0 && whole.usage.completion_tokens > 0);
  const stream = await client.chat.completions.create({ model: "x", messages, max_tokens: 16, temperature: 0, stream: true,
                                                        stream_options: { include_usage: true } });
  let text = "", finish = null, usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    if (!chunk.choices.length) continue;
    text += chunk.choices[0].delta.content || "";
    finish = chunk.choices[0].finish_reason || finish;
  }
  assert.equal(text, whole.choices[0].message.content);
  assert.ok(finish === "stop" || finish === "length");
  assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
});

test("an uploaded image is named by its id and answered like the inline one", async () => {
  const up = await fetch(srv.url + "/v1/images", { method: "POST", headers: { Authorization: "Bearer test-key", "Content-Type": "image/png" },
                                                   body: png("chart.png") });
  assert.equal(up.status, 200);
  const { id } = await up.json();
  const ask = (url) => client.chat.completions.create({ model: "x", max_tokens: 12, temperature: 0, messages: [
    { role: "user", content: [{ type: "text", text: "Which bar is tallest?" }, { type: "image_url", image_url: { url } }] }] });
  const byId = await ask(id);
  const inline = await ask(dataUri("chart.png"));
  assert.equal(byId.choices[0].message.content, inline.choices[0].message.content);
  assert.ok(await metric(srv.url, "edgevlm_image_cache_hits_total") >= 2);
});

test("a follow-up reuses the conversation's KV cache", async () => {
  const messages = [{ role: "user", content: "What is 2 + 3?" }];
  const a = await client.chat.completions.create({ model: "x", messages, max_tokens: 8, temperature: 0 });
  messages.push(a.choices[0].message, { role: "user", content: "What is 4 + 4?" });
  const b = await client.chat.completions.create({ model: "x", messages, max_tokens: 8, temperature: 0 });
  assert.ok(b.usage.prompt_tokens_details.cached_tokens > 0, JSON.stringify(b.usage));
});

test("errors arrive as the client's typed exceptions", async () => {
  await assert.rejects(client.chat.completions.create({ model: "x", messages: [{ role: "user", content: "hi" }], n: 2 }),
                       (e) => e instanceof OpenAI.BadRequestError && /one choice/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model: "x", messages: [{ role: "user", content: [
                         { type: "image_url", image_url: { url: "https://example.com/cat.png" } }] }] }),
                       (e) => e instanceof OpenAI.BadRequestError && /remote URLs/.test(e.message));
  const wrongKey = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "nope", maxRetries: 0 });
  await assert.rejects(wrongKey.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
});

test("a client that goes away mid-answer stops the answer and frees its slot", async () => {
  const long = await startServer(["-m", await randomModel(ROOT + "build/server-test"), "-t", "1", "--max-tokens", "100000",
                                  "--ctx", "8192"]);
  try {
    const c = new OpenAI({ baseURL: long.url + "/v1", apiKey: "none", maxRetries: 0 });
    const ctrl = new AbortController();
    const stream = await c.chat.completions.create(
      { model: "x", messages: [{ role: "user", content: "Tell me a long story." }], max_tokens: 4000, stream: true },
      { signal: ctrl.signal });
    let n = 0;
    try { for await (const chunk of stream) { if (++n === 5) ctrl.abort(); } } catch { /* aborted */ }
    const t0 = Date.now();
    while ((await metric(long.url, "edgevlm_slots_busy")) > 0 && Date.now() - t0 < 5000) await new Promise(r => setTimeout(r, 20));
    assert.equal(await metric(long.url, "edgevlm_slots_busy"), 0, "the slot was not freed");
    assert.equal(await metric(long.url, "edgevlm_requests_cancelled_total"), 1);
    assert.ok(await metric(long.url, "edgevlm_completion_tokens_total") < 4000, "the answer ran to its end");
  } finally {
    assert.equal((await long.stop()).code, 0);
  }
});

test("a full queue answers 429 with Retry-After", async () => {
  const busy = await startServer([...nano, "--slots", "1", "--queue", "0"]);
  try {
    const c = new OpenAI({ baseURL: busy.url + "/v1", apiKey: "none", maxRetries: 0 });
    const ask = () => c.chat.completions.create({ model: "x", messages: [{ role: "user", content: "Count to ten." }],
                                                  max_tokens: 64, temperature: 1, seed: 3 });
    const results = await Promise.allSettled([ask(), ask(), ask(), ask()]);
    const rejected = results.filter(r => r.status === "rejected");
    assert.ok(results.some(r => r.status === "fulfilled"));
    assert.ok(rejected.length > 0, "no request was turned away");
    for (const r of rejected) {
      assert.ok(r.reason instanceof OpenAI.RateLimitError, String(r.reason));
      assert.equal(r.reason.headers["retry-after"], "1");
    }
  } finally {
    assert.equal((await busy.stop()).code, 0);
  }
});

test("SIGTERM lets the streaming answer finish, then exits 0", async () => {
  const s = await startServer([...nano]);
  const c = new OpenAI({ baseURL: s.url + "/v1", apiKey: "none", maxRetries: 0 });
  const stream = await c.chat.completions.create({ model: "x", messages: [{ role: "user", content: "Describe this image." }],
                                                   max_tokens: 40, stream: true });
  let text = "", finish = null, signalled = false;
  for await (const chunk of stream) {
    if (!signalled) { s.child.kill("SIGTERM"); signalled = true; }
    if (chunk.choices.length) { text += chunk.choices[0].delta.content || ""; finish = chunk.choices[0].finish_reason || finish; }
  }
  assert.ok(finish, "the stream ended without a finish_reason");
  const r = await s.exited;
  assert.equal(r.code, 0, s.log());
});
