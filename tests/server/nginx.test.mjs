// Two `edgevlm serve` instances behind nginx (Debian's package) with deploy/nginx/edgevlm.conf on
// loopback: every request answered, tokens streamed through, and each conversation's requests on
// one instance (so its prompt cache hits there).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import OpenAI from "openai";
import { startServer, nano, ROOT } from "./lib.mjs";

const NGINX = process.env.NGINX || "/usr/sbin/nginx";
let a, b, nginx, base;

const freePort = () => new Promise((resolve) => {
  const s = createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
});

before(async () => {
  a = await startServer([...nano.slice(0, -2), "-t", "1"]);
  b = await startServer([...nano.slice(0, -2), "-t", "1"]);
  const port = await freePort();
  const dir = mkdtempSync(tmpdir() + "/edgevlm-nginx-");
  chmodSync(dir, 0o755);  // nginx's workers (an unprivileged user when started as root) buffer bodies here
  const site = readFileSync(ROOT + "deploy/nginx/edgevlm.conf", "utf8")
    .replace("server 127.0.0.1:8081", "server " + a.url.replace("http://", ""))
    .replace("server 127.0.0.1:8082", "server " + b.url.replace("http://", ""))
    .replace("listen 127.0.0.1:8080", "listen 127.0.0.1:" + port);
  writeFileSync(dir + "/nginx.conf", `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 256; }
http { access_log off; client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
       fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
${site} }
`);
  nginx = spawn(NGINX, ["-p", dir, "-c", dir + "/nginx.conf"], { stdio: "inherit" });
  base = "http://127.0.0.1:" + port;
  for (let i = 0; i < 100; ++i) {
    try { if ((await fetch(base + "/health")).ok) break; } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
});
after(async () => {
  if (nginx) { nginx.kill("SIGQUIT"); await new Promise((r) => nginx.on("exit", r)); }
  for (const s of [a, b]) if (s) assert.equal((await s.stop()).code, 0, s.log());
});

test("conversations stick to one instance and all are answered", async () => {
  const conversations = Array.from({ length: 16 }, (_, i) => "conversation-" + i);
  const instances = new Map();
  await Promise.all(conversations.map(async (id) => {
    let instance = null;
    const headers = { "X-Conversation-Id": id };
    const client = new OpenAI({ baseURL: base + "/v1", apiKey: "none", maxRetries: 0, defaultHeaders: headers });
    const messages = [];
    // The first question carries an image: a body larger than nginx keeps in memory goes through
    // its temporary files.
    const banner = "data:image/png;base64," + readFileSync(ROOT + "examples/banner.png").toString("base64");
    for (const q of ["What does the banner say?", "And 2 + 2?"]) {
      messages.push({ role: "user", content: messages.length ? q : [{ type: "text", text: q },
                                                                    { type: "image_url", image_url: { url: banner } }] });
      const { data, response } = await client.chat.completions
        .create({ model: "x", messages, max_tokens: 8, temperature: 0, stream: true })
        .withResponse();
      let text = "";
      for await (const c of data) text += c.choices[0]?.delta?.content || "";
      messages.push({ role: "assistant", content: text });
      const served = response.headers.get("x-edgevlm-instance");
      assert.ok(served, "no X-Edgevlm-Instance header");
      if (instance === null) instance = served;
      assert.equal(served, instance, `conversation ${id} moved from ${instance} to ${served}`);
    }
    instances.set(id, instance);
  }));
  assert.equal(instances.size, conversations.length);
  // Sixteen conversations hashed over two instances land on both (all on one: a chance of 2^-15).
  assert.equal(new Set(instances.values()).size, 2, JSON.stringify([...instances]));
});
