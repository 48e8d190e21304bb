// Starting and stopping `edgevlm serve` for the tests: a free port chosen by the server (--port 0),
// read back from its first line on stderr.
import { spawn } from "node:child_process";

export const EDGEVLM = process.env.EDGEVLM || "build/edgevlm";
export const ROOT = new URL("../..", import.meta.url).pathname;

export async function startServer(args, { timeoutMs = 60000 } = {}) {
  const child = spawn(EDGEVLM, ["serve", "--port", "0", ...args], { stdio: ["ignore", "inherit", "pipe"] });
  let log = "";
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("edgevlm serve did not start:\n" + log)), timeoutMs);
    child.stderr.on("data", (d) => {
      log += d.toString();
      const m = log.match(/listening on (http:\/\/[^ ]+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`edgevlm serve exited (${code}):\n${log}`)); });
  });
  child.stderr.on("data", (d) => { log += d.toString(); });
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  return {
    url, child, exited,
    log: () => log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

export async function metric(url, name) {
  const text = await (await fetch(url + "/metrics")).text();
  const m = text.match(new RegExp("^" + name + " ([0-9.e+-]+)$", "m"));
  return m ? Number(m[1]) : NaN;
}

export const nano = ["-m", ROOT + "models/edgevlm-nano.gguf", "--mmproj", ROOT + "models/edgevlm-nano-mmproj.gguf", "-t", "2"];

// A random-weight decoder with the nano model's vocabulary: it rarely emits its end token, so its
// answers run to the limit (for stop and disconnect tests).
export async function randomModel(dir) {
  const { execFileSync } = await import("node:child_process");
  const { mkdirSync, existsSync } = await import("node:fs");
  mkdirSync(dir, { recursive: true });
  const path = dir + "/random-llm-512.gguf";
  if (!existsSync(path))
    execFileSync(EDGEVLM, ["gen-model", "--out", path, "--embd", "512", "--layers", "4", "--heads", "8", "--ff", "1536",
                           "--ctx", "8192", "--type", "q8_0", "--vocab-from", ROOT + "models/edgevlm-nano.gguf"], { stdio: "ignore" });
  return path;
}
