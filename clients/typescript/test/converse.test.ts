// Streams a real conversation through a running Switchboard.
//
//   SWITCHBOARD_TARGET=127.0.0.1:50051 SWITCHBOARD_API_KEY=... SWITCHBOARD_LLM_ID=... npm test
//
// Optional: SWITCHBOARD_EXPECT_TEXT / SWITCHBOARD_EXPECT_REASONING (the upstream's exact answer)
// and SWITCHBOARD_UPSTREAM_URL (an OpenAI-compatible base URL, to register a second LLM).
// tests/integration/test_node_client.py sets all of them against a simulator.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import type { ServiceError } from "@grpc/grpc-js";

import {
  ApiSpec, FinishReason, type ConverseEvent, Reply, Role, richError, SwitchboardClient,
} from "../src/index";

const env = process.env;
const target = env.SWITCHBOARD_TARGET ?? "";
const apiKey = env.SWITCHBOARD_API_KEY ?? "";
const llmId = env.SWITCHBOARD_LLM_ID ?? "";
const missing = !target || !apiKey || !llmId;

describe("a running Switchboard", { skip: missing && "set SWITCHBOARD_TARGET, SWITCHBOARD_API_KEY and SWITCHBOARD_LLM_ID" }, () => {
  let sb: SwitchboardClient;

  before(() => {
    sb = new SwitchboardClient(target, apiKey);
  });

  after(() => {
    sb.close();
  });

  test("getLlm and listLlms see the LLM", async () => {
    const llm = await sb.getLlm(llmId, { timeoutMs: 10_000 });
    assert.equal(llm.id, llmId);
    assert.ok(llm.endpoints.length > 0);
    const ids: string[] = [];
    for await (const each of sb.listLlms(1, { timeoutMs: 10_000 })) ids.push(each.id);
    assert.ok(ids.includes(llmId), `listLlms gave ${ids.join(", ")}`);
  });

  test("a session turn streams reasoning apart from text and finishes", async () => {
    const session = await sb.createSession(llmId, { systemPrompt: "Be brief.", timeoutMs: 10_000 });
    const events: ConverseEvent[] = [];
    for await (const event of sb.converse({ sessionId: session.id }, "Hi!", { timeoutMs: 30_000 })) {
      events.push(event);
    }
    const kinds = events.map((e) => e.$case);
    assert.deepEqual(kinds.slice(0, 2), ["started", "route"]);
    assert.deepEqual(kinds.slice(-2), ["usage", "finished"]);
    assert.ok(kinds.includes("text") && kinds.includes("reasoning"), kinds.join(" "));

    const reply = new Reply();
    for (const event of events) reply.apply(event);
    assert.ok(reply.text.length > 0);
    assert.equal(reply.reasoningHistory.length, 1);
    if (env.SWITCHBOARD_EXPECT_TEXT) assert.equal(reply.text, env.SWITCHBOARD_EXPECT_TEXT);
    if (env.SWITCHBOARD_EXPECT_REASONING) {
      assert.deepEqual(reply.reasoningHistory, [env.SWITCHBOARD_EXPECT_REASONING]);
      assert.ok(!reply.text.includes(env.SWITCHBOARD_EXPECT_REASONING));
    }
    assert.ok(!reply.reasoning.includes(reply.text));
    assert.equal(reply.complete, true);
    assert.equal(reply.finished?.finishReason, FinishReason.FINISH_REASON_STOP);
    assert.equal(reply.endpointId, reply.routes.at(-1)?.endpointId);

    const stored = await sb.getSession(session.id, { timeoutMs: 10_000 });
    assert.deepEqual(stored.messages.map((m) => m.role), [Role.ROLE_USER, Role.ROLE_ASSISTANT]);
    await sb.endSession(session.id, { timeoutMs: 10_000 });
    console.log(`reasoning: ${JSON.stringify(reply.reasoning)}\ntext: ${JSON.stringify(reply.text)}`);
  });

  test("createLlm registers an LLM that answers a stateless turn", { skip: !env.SWITCHBOARD_UPSTREAM_URL && "set SWITCHBOARD_UPSTREAM_URL" }, async () => {
    const created = await sb.createLlm({
      displayName: "node-client-test",
      endpoints: [{ apiSpec: ApiSpec.API_SPEC_OPENAI, baseUrl: env.SWITCHBOARD_UPSTREAM_URL,
        model: "sim-model", apiKey: "sk-node-test", label: "loopback" }],
    }, { skipValidation: true, timeoutMs: 10_000 });
    const id = created.llm?.id ?? "";
    assert.ok(id);
    assert.equal(created.llm?.endpoints[0]?.apiKeyHint.endsWith("test"), true);
    const reply = await sb.reply({ llmId: id }, "Hello?", { timeoutMs: 30_000 });
    assert.equal(reply.complete, true);
    assert.ok(reply.text.length > 0);
  });

  test("leaving the loop early cancels the turn; an aborted signal cancels it too", async () => {
    for await (const event of sb.converse({ llmId }, "Hi!", { timeoutMs: 30_000 })) {
      assert.equal(event.$case, "started");
      break;
    }
    const aborted = new AbortController();
    aborted.abort();
    await assert.rejects(sb.reply({ llmId }, "Hi!", { signal: aborted.signal }), { code: 1 });
    const reply = await sb.reply({ llmId }, "Hi!", { timeoutMs: 30_000 });
    assert.equal(reply.complete, true);
  });

  test("barge-in: a cancelled answer is kept as heard, and the next turn barges in", async () => {
    const session = await sb.createSession(llmId, { timeoutMs: 10_000 });
    let turnId = "";
    for await (const event of sb.converse({ sessionId: session.id }, "Hi!", { timeoutMs: 30_000 })) {
      if (event.$case === "started") turnId = event.value.turnId;
      if (event.$case === "text") break; // the user started talking: cancels the turn
    }
    // Finished or cancelled, the answer keeps what the user heard: its first five characters.
    const truncated = await sb.truncateTurn(session.id, turnId, 5, { timeoutMs: 10_000 });
    const answer = truncated.messages.at(-1);
    assert.equal(answer?.role, Role.ROLE_ASSISTANT);
    assert.equal(answer?.interrupted, true);
    const heard = answer?.parts.map((p) => (p.kind?.$case === "text" ? p.kind.value : "")).join("");
    assert.equal(heard?.length, 5);
    if (env.SWITCHBOARD_EXPECT_TEXT) assert.equal(heard, env.SWITCHBOARD_EXPECT_TEXT.slice(0, 5));
    assert.equal(answer?.turnId, turnId);
    const next = await sb.reply({ sessionId: session.id }, "Sorry, go on.",
      { timeoutMs: 30_000, request: { bargeIn: true } });
    assert.equal(next.complete, true);
    const stored = await sb.getSession(session.id, { timeoutMs: 10_000 });
    assert.deepEqual(stored.messages.map((m) => [m.role, m.interrupted]), [
      [Role.ROLE_USER, false], [Role.ROLE_ASSISTANT, true],
      [Role.ROLE_USER, false], [Role.ROLE_ASSISTANT, false]]);
    await sb.endSession(session.id, { timeoutMs: 10_000 });
  });

  test("failures decode the server's error model from grpc-status-details-bin", async () => {
    const missing = await sb.getLlm("llm_missing", { timeoutMs: 10_000 }).catch((e: unknown) => e);
    const notFound = richError(missing as ServiceError);
    assert.equal(notFound.code, 5);
    assert.equal(notFound.reason, "LLM_NOT_FOUND");
    assert.equal(notFound.domain, "switchboard.dev");
    assert.ok(notFound.requestId.length > 0);
    const bad = await sb.createLlm({ displayName: "no-endpoints", endpoints: [] },
      { timeoutMs: 10_000 }).catch((e: unknown) => e);
    const invalid = richError(bad as ServiceError);
    assert.equal(invalid.code, 3);
    assert.deepEqual(invalid.fieldViolations.map((v) => v.field), ["llm.endpoints"]);
    assert.ok(invalid.details.some((d) => d.typeName === "google.rpc.BadRequest"));
  });

  test("a bad API key is UNAUTHENTICATED", async () => {
    const stranger = new SwitchboardClient(target, "not-a-key");
    try {
      await assert.rejects(stranger.getLlm(llmId, { timeoutMs: 10_000 }), { code: 16 });
    } finally {
      stranger.close();
    }
  });
});
