// connect-es in Node against a running Switchboard: ListLlms, a streamed Converse, and the
// error model (code + ErrorInfo reason from the details), over the Connect protocol or
// gRPC-Web. Prints one JSON object.
//   node connect_node.mjs <base url> <api key> <llm id> [connect|grpc-web]
import { createClient, ConnectError, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { ErrorInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";
import { Code } from "@connectrpc/connect";
import { LlmRegistry } from "../src/gen/switchboard/v1/registry_pb.js";
import { Conversations, Role } from "../src/gen/switchboard/v1/conversations_pb.js";

const [baseUrl, apiKey, llmId, protocol = "connect"] = process.argv.slice(2);

function auth(key: string): Interceptor {
  return (next) => async (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
}

function transport(key: string) {
  const options = { baseUrl, httpVersion: "1.1" as const, interceptors: [auth(key)] };
  return protocol === "grpc-web" ? createGrpcWebTransport(options) : createConnectTransport(options);
}

async function main(): Promise<void> {
  const registry = createClient(LlmRegistry, transport(apiKey));
  const conversations = createClient(Conversations, transport(apiKey));
  const names = (await registry.listLlms({})).llms.map((l) => l.displayName);
  const kinds: string[] = [];
  let text = "";
  let reasoning = "";
  for await (const event of conversations.converse({
    target: { case: "llmId", value: llmId }, messages: [{ role: Role.USER, parts: [{ kind: { case: "text", value: "Hi" } }] }],
  })) {
    kinds.push(event.event.case ?? "");
    if (event.event.case === "text") text += event.event.value.delta;
    if (event.event.case === "reasoning") reasoning += event.event.value.delta;
  }
  let error: { code: string; reason: string } | null = null;
  try {
    await registry.getLlm({ llmId: "llm_nope" });
  } catch (err) {
    const e = ConnectError.from(err);
    error = { code: Code[e.code], reason: e.findDetails(ErrorInfoSchema)[0]?.reason ?? "" };
  }
  let badKey = "";
  try {
    await createClient(LlmRegistry, transport("wrong-key")).listLlms({});
  } catch (err) {
    badKey = Code[ConnectError.from(err).code];
  }
  console.log(JSON.stringify({ protocol, names, kinds, text, reasoning, error, badKey }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
