// The chat page at / in headless Chromium (Debian's chromium, driven by puppeteer-core): attach an
// image (its upload starts at once), ask, see the answer stream in with its timing line, stop a
// long answer, start a new chat. The screenshot stays in $ARTIFACTS (build/server-test/).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import puppeteer from "puppeteer-core";
import { startServer, metric, nano, randomModel, ROOT } from "./lib.mjs";

const ARTIFACTS = process.env.ARTIFACTS || ROOT + "build/server-test";
let srv, browser;

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  srv = await startServer([...nano]);
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
});
after(async () => {
  if (browser) await browser.close();
  if (srv) assert.equal((await srv.stop()).code, 0, srv.log());
});

test("attach an image, ask, watch the answer stream with its timing line", async () => {
  const page = await browser.newPage();
  await page.setViewport({ width: 900, height: 640 });
  await page.goto(srv.url + "/");
  await page.waitForFunction(() => document.getElementById("model").textContent.length > 0);
  const input = await page.$("#file");
  await input.uploadFile(ROOT + "examples/banner.png");
  // The upload (and so the encode) starts before the question is typed.
  await page.waitForFunction(() => document.querySelector("#thumbs figcaption")?.textContent === "ready to ask",
                             { timeout: 30000 });
  await page.type("#question", "What does the banner say?");
  await page.click("#send");
  await page.waitForFunction(() => /decode \d+ tok/.test(document.querySelector(".assistant .timing")?.textContent || ""),
                             { timeout: 60000 });
  const answer = await page.$eval(".assistant .text", (e) => e.textContent);
  const timing = await page.$eval(".assistant .timing", (e) => e.textContent);
  assert.ok(answer.trim().length > 0, "empty answer");
  assert.match(timing, /encode \d+ ms/);
  assert.match(timing, /prefill \d+ tok/);
  await page.screenshot({ path: ARTIFACTS + "/chat-page.png" });

  // A follow-up in the same chat continues the conversation (the server's prompt cache).
  await page.type("#question", "And what colour is it?");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelectorAll(".assistant .timing")[1]?.textContent.includes("cached"),
                             { timeout: 60000 });
  await page.click("#new-chat");
  assert.equal(await page.$$eval(".msg", (m) => m.length), 0);
  await page.close();
});

test("the stop button ends a long answer", async () => {
  // A random-weight model rarely emits its end token, so its answers run to the limit.
  const model = await randomModel(ARTIFACTS);
  const slow = await startServer(["-m", model, "-t", "1", "--max-tokens", "100000", "--ctx", "8192"]);
  try {
    const page = await browser.newPage();
    await page.goto(slow.url + "/");
    await page.type("#question", "Tell me a long story.");
    await page.click("#send");
    await page.waitForFunction(() => (document.querySelector(".assistant .text")?.textContent || "").length > 20,
                               { timeout: 30000 });
    await page.click("#stop");
    await page.waitForFunction(() => document.querySelector(".assistant .timing")?.textContent === "stopped",
                               { timeout: 10000 });
    assert.equal(await page.$eval("#send", (b) => b.disabled), false);
    for (let i = 0; i < 50 && (await metric(slow.url, "edgevlm_slots_busy")) > 0; ++i) await new Promise(r => setTimeout(r, 100));
    assert.equal(await metric(slow.url, "edgevlm_slots_busy"), 0, "the slot was not freed after stop");
    assert.ok((await metric(slow.url, "edgevlm_requests_cancelled_total")) >= 1);
    await page.close();
  } finally {
    assert.equal((await slow.stop()).code, 0);
  }
});
