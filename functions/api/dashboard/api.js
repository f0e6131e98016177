// The page's only way to the API: every data call is authenticated here.
//   iam:  SigV4 with aws4fetch (service execute-api); the WebSocket URL presigned the same way.
//   jwt:  Authorization: Bearer <token>; ?token=<token> on the WebSocket.
//   none: nothing (the local stack with --auth none).
// Credentials come from the settings dialog (sessionStorage, this tab only) or, on the local
// stack, from the config the local gateway embeds in the page (docs/dashboard.md).
import { AwsClient } from "./vendor/aws4fetch.esm.mjs";

const STORAGE_KEY = "graphflow.connection";

function embedded() {
  const node = document.getElementById("graphflow-config");
  try {
    return JSON.parse(node ? node.textContent : "{}") || {};
  } catch {
    return {};
  }
}

export const config = embedded();

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.message || body.code)) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
    this.body = body;
  }
}

export function loadConnection() {
  let saved = {};
  try {
    saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "{}");
  } catch {
    saved = {};
  }
  const given = config.credentials || {};
  return {
    mode: saved.mode || config.auth || null,
    access_key: saved.access_key || given.access_key || "",
    secret_key: saved.secret_key || given.secret_key || "",
    session_token: saved.session_token || given.session_token || "",
    jwt: saved.jwt || "",
    region: saved.region || config.region || "us-east-1",
    ws_url: saved.ws_url || config.ws_url || defaultWsUrl(),
  };
}

export function saveConnection(connection) {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(connection));
  current = connection;
  signer = null;
}

export function forgetConnection() {
  sessionStorage.removeItem(STORAGE_KEY);
  current = loadConnection();
  signer = null;
}

function defaultWsUrl() {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
}

let current = loadConnection();
let signer = null;

export function connection() {
  return current;
}

function awsClient() {
  if (!signer) {
    signer = new AwsClient({
      accessKeyId: current.access_key,
      secretAccessKey: current.secret_key,
      sessionToken: current.session_token || undefined,
      service: "execute-api",
      region: current.region,
    });
  }
  return signer;
}

// Which authentication the API expects, from how it refuses an unauthenticated call:
// API Gateway answers 403 without a signature (IAM) and 401 without a token (JWT).
export async function detectMode() {
  if (current.mode) return current.mode;
  const response = await fetch("/tools", { headers: { accept: "application/json" } });
  const mode = response.ok ? "none" : response.status === 401 ? "jwt" : "iam";
  current = { ...current, mode };
  return mode;
}

export function hasCredentials() {
  if (current.mode === "iam") return Boolean(current.access_key && current.secret_key);
  if (current.mode === "jwt") return Boolean(current.jwt);
  return current.mode === "none";
}

async function send(path, init = {}) {
  const headers = { accept: "application/json", ...(init.headers || {}) };
  const request = { ...init, headers };
  const url = new URL(path, location.origin).toString();
  if (current.mode === "iam") return awsClient().fetch(url, request);
  if (current.mode === "jwt") headers.authorization = `Bearer ${current.jwt}`;
  return fetch(url, request);
}

export async function api(path, { method = "GET", body, accept } = {}) {
  const init = { method };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers = { "content-type": "application/json" };
  }
  if (accept) init.headers = { ...(init.headers || {}), accept };
  const response = await send(path, init);
  const text = await response.text();
  let data = text;
  if ((response.headers.get("content-type") || "").includes("json")) {
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = text;
    }
  }
  if (!response.ok) throw new ApiError(response.status, typeof data === "object" ? data : { message: text });
  return data;
}

// The WebSocket URL for following a run from `after` on, authenticated for the current mode.
export async function webSocketUrl(runId, after) {
  const url = new URL(current.ws_url);
  url.searchParams.set("run_id", runId);
  url.searchParams.set("after", String(after));
  if (current.mode === "jwt") {
    url.searchParams.set("token", current.jwt);
    return url.toString();
  }
  if (current.mode === "iam") {
    // Signed as http(s): a signature covers the host, path and query, not the scheme.
    const scheme = url.protocol;
    url.protocol = scheme === "wss:" ? "https:" : "http:";
    url.searchParams.set("X-Amz-Expires", "300");
    const signed = new URL((await awsClient().sign(url.toString(), { method: "GET", aws: { signQuery: true } })).url);
    signed.protocol = scheme;
    return signed.toString();
  }
  return url.toString();
}
