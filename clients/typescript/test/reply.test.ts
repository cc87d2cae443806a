// Reply aggregation, without a server: the same cases the Python client's Reply handles.
import assert from "node:assert/strict";
import { test } from "node:test";

import { FailoverMode, FinishReason } from "../src/gen/switchboard/v1/conversations";
import { type ConverseEvent, Reply } from "../src/index";

function text(messageId: string, delta: string): ConverseEvent {
  return { $case: "text", value: { messageId, delta } };
}

function reasoning(reasoningId: string, delta: string): ConverseEvent {
  return { $case: "reasoning", value: { reasoningId, delta } };
}

test("text and reasoning are kept apart, by message id, in order", () => {
  const reply = new Reply();
  for (const event of [reasoning("r1", "Think"), reasoning("r1", "ing."), text("m1", "Hel"),
    reasoning("r2", "More."), text("m1", "lo")]) {
    reply.apply(event);
  }
  assert.equal(reply.text, "Hello");
  assert.deepEqual(reply.reasoningHistory, ["Thinking.", "More."]);
  assert.equal(reply.reasoning, "Thinking.\n\nMore.");
  assert.equal(reply.complete, false);
});

test("a failover discards the named text and reasoning messages", () => {
  const reply = new Reply();
  reply.apply(reasoning("r1", "old thought"));
  reply.apply(text("m1", "Half an ans"));
  reply.apply({ $case: "failover", value: {
    fromEndpointId: "a", toEndpointId: "b", cause: "stream cut", discardMessageIds: ["m1", "r1"],
    mode: FailoverMode.FAILOVER_MODE_RESTART } });
  reply.apply(reasoning("r2", "new thought"));
  reply.apply(text("m2", "A whole answer."));
  assert.equal(reply.text, "A whole answer.");
  assert.deepEqual(reply.reasoningHistory, ["new thought"]);
  assert.equal(reply.failovers.length, 1);
});

test("a continued failover keeps the text and the next deltas extend it", () => {
  const reply = new Reply();
  reply.apply(text("m1", "One seamless "));
  reply.apply({ $case: "failover", value: {
    fromEndpointId: "a", toEndpointId: "b", cause: "stream cut", discardMessageIds: ["m1"],
    mode: FailoverMode.FAILOVER_MODE_CONTINUE } });
  reply.apply(text("m1", "answer."));
  assert.equal(reply.text, "One seamless answer.");
  assert.equal(reply.failovers.length, 1);
});

test("tool calls assemble by index; finish, usage and turn id are kept", () => {
  const reply = new Reply();
  reply.apply({ $case: "started", value: { turnId: "t1", sessionId: "", llmId: "l1",
    historyMessagesOmitted: 0 } });
  reply.apply({ $case: "toolCall", value: {
    index: 0, id: "c1", name: "weather", argumentsDelta: '{"ci', thoughtSignature: "" } });
  reply.apply({ $case: "toolCall", value: {
    index: 1, id: "c2", name: "time", argumentsDelta: "{}", thoughtSignature: "" } });
  reply.apply({ $case: "toolCall", value: {
    index: 0, id: "", name: "", argumentsDelta: 'ty":"Oslo"}', thoughtSignature: "" } });
  reply.apply({ $case: "usage", value: { inputTokens: 3, outputTokens: 5, reasoningTokens: 0 } });
  reply.apply({ $case: "finished", value: {
    finishReason: FinishReason.FINISH_REASON_TOOL_CALLS, complete: true, endpointId: "e1",
    model: "m", attempts: 1, timeToFirstToken: undefined, providerFinishReason: "",
    thoughtSignature: "" } });
  assert.equal(reply.turnId, "t1");
  assert.deepEqual([...reply.toolCalls.values()].map((c) => [c.id, c.name, JSON.parse(c.argumentsJson)]),
    [["c1", "weather", { city: "Oslo" }], ["c2", "time", {}]]);
  assert.equal(reply.usage?.outputTokens, 5);
  assert.equal(reply.complete, true);
  assert.equal(reply.endpointId, "e1");
});
