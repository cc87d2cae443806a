// The Lab's only way to the server: connect-es clients of LlmRegistry and Conversations over
// the Connect protocol on this same origin, with the signed-in key in the Authorization
// header. The key lives in memory and the tab's sessionStorage (never localStorage, never a
// URL); signing out removes it.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import {
  BadRequestSchema, ErrorInfoSchema, RequestInfoSchema, RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";
import { Conversations } from "./gen/switchboard/v1/conversations_pb.js";
import { LlmRegistry, ValidationReportSchema, type ValidationReport } from "./gen/switchboard/v1/registry_pb.js";

const STORAGE_KEY = "switchboard.lab.apiKey";
let apiKey: string | null = sessionStorage.getItem(STORAGE_KEY);

export function signedIn(): boolean {
  return apiKey !== null;
}

export function signIn(key: string): void {
  apiKey = key;
  sessionStorage.setItem(STORAGE_KEY, key);
}

export function signOut(): void {
  apiKey = null;
  sessionStorage.removeItem(STORAGE_KEY);
}

const auth: Interceptor = (next) => async (req) => {
  if (apiKey !== null) req.header.set("authorization", `Bearer ${apiKey}`);
  return next(req);
};

const transport = createConnectTransport({
  baseUrl: window.location.origin,
  interceptors: [auth],
  useBinaryFormat: false,
  // Never send credentials of any kind but the header above; the server refuses other origins.
  fetch: (input, init) => fetch(input, { ...init, credentials: "omit", redirect: "error" }),
});

export const registry: Client<typeof LlmRegistry> = createClient(LlmRegistry, transport);
export const conversations: Client<typeof Conversations> = createClient(Conversations, transport);

export interface Problem {
  code: string;
  message: string;
  reason: string;
  violations: { field: string; description: string }[];
  retryAfterS: number | null;
  requestId: string;
  report: ValidationReport | null;
  unauthenticated: boolean;
  aborted: boolean;
}

// Everything the server's error model says, read from a ConnectError's details.
export function problem(err: unknown): Problem {
  const e = ConnectError.from(err);
  const info = e.findDetails(ErrorInfoSchema)[0];
  const retry = e.findDetails(RetryInfoSchema)[0];
  const delay = retry?.retryDelay;
  return {
    code: Code[e.code] ?? "Unknown",
    message: e.rawMessage,
    reason: info?.reason ?? "",
    violations: e.findDetails(BadRequestSchema).flatMap((b) =>
      b.fieldViolations.map((v) => ({ field: v.field, description: v.description }))),
    retryAfterS: delay ? Number(delay.seconds) + delay.nanos / 1e9 : null,
    requestId: e.findDetails(RequestInfoSchema)[0]?.requestId ?? "",
    report: e.findDetails(ValidationReportSchema)[0] ?? null,
    unauthenticated: e.code === Code.Unauthenticated,
    aborted: e.code === Code.Canceled,
  };
}
