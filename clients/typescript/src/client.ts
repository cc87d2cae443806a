/**
 * `SwitchboardClient`: a thin typed wrapper over the generated @grpc/grpc-js stubs.
 *
 *     const sb = new SwitchboardClient("127.0.0.1:50051", process.env.SWITCHBOARD_API_KEY!);
 *     const session = await sb.createSession(llmId, { systemPrompt: "Be brief." });
 *     for await (const event of sb.converse({ sessionId: session.id }, "Hi!")) {
 *       if (event.$case === "text") process.stdout.write(event.value.delta);
 *     }
 *     sb.close();
 *
 * Every call sends `authorization: Bearer <api key>`. Failures reject with grpc-js's
 * `ServiceError` (`code`, `details`, and the rich `google.rpc.Status` in
 * `metadata.get("grpc-status-details-bin")`), exactly as the server sent them.
 */

import {
  type CallOptions,
  Channel,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientUnaryCall,
  credentials as grpcCredentials,
  Metadata,
  type ServiceError,
} from "@grpc/grpc-js";

import {
  ConversationsClient,
  ConverseRequest,
  type ConverseResponse,
  CreateSessionRequest,
  EndSessionRequest,
  GetSessionRequest,
  Message,
  Role,
  type Session,
  TruncateTurnRequest,
  UpdateSessionRequest,
} from "./gen/switchboard/v1/conversations";
import type { Llm } from "./gen/switchboard/v1/llm";
import {
  CreateLlmRequest,
  type CreateLlmResponse,
  GetLlmRequest,
  ListLlmsRequest,
  LlmRegistryClient,
} from "./gen/switchboard/v1/registry";
import { type ConverseEvent, Reply } from "./reply";

type Builtin = Date | Function | Uint8Array | string | number | boolean | undefined;

/** A message with any fields left out, as the generated `fromPartial` methods accept it. */
export type DeepPartial<T> = T extends Builtin ? T
  : T extends Array<infer U> ? Array<DeepPartial<U>>
  : T extends { $case: string; value: unknown } ? { $case: T["$case"]; value?: DeepPartial<T["value"]> }
  : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> }
  : Partial<T>;

/** A message, or a string that becomes a user message. */
export type MessageLike = DeepPartial<Message> | string;

/** What a turn talks to: a session the server keeps, or an LLM statelessly. */
export type ConverseTarget = { sessionId: string } | { llmId: string };

export interface ClientOptions {
  /** Channel credentials; insecure (plaintext) when not given. */
  credentials?: ChannelCredentials;
  /** grpc-js channel options, for example `{"grpc.keepalive_time_ms": 30000}`. */
  channelOptions?: ChannelOptions;
}

export interface CallSettings {
  /** The call's deadline, as milliseconds from now. */
  timeoutMs?: number;
}

export interface ConverseOptions extends CallSettings {
  /** Functions the model may call, how it may call them, and generation overrides. */
  request?: DeepPartial<Omit<ConverseRequest, "target" | "messages">>;
  /** Cancels the stream when aborted. */
  signal?: AbortSignal;
}

export function user(text: string): Message {
  return textMessage(Role.ROLE_USER, text);
}

export function system(text: string): Message {
  return textMessage(Role.ROLE_SYSTEM, text);
}

function textMessage(role: Role, text: string): Message {
  return Message.fromPartial({ role, parts: [{ kind: { $case: "text", value: text } }] });
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

export class SwitchboardClient {
  /** The generated LlmRegistry stub, for RPCs this wrapper does not cover. */
  readonly registry: LlmRegistryClient;
  /** The generated Conversations stub. */
  readonly conversations: ConversationsClient;
  readonly #channel: Channel;
  readonly #apiKey: string;

  constructor(target: string, apiKey: string, options: ClientOptions = {}) {
    const creds = options.credentials ?? grpcCredentials.createInsecure();
    this.#channel = new Channel(target, creds, options.channelOptions ?? {});
    this.#apiKey = apiKey;
    this.registry = new LlmRegistryClient(target, creds, { channelOverride: this.#channel });
    this.conversations = new ConversationsClient(target, creds, { channelOverride: this.#channel });
  }

  close(): void {
    this.#channel.close();
  }

  // LLMs

  async createLlm(
    llm: DeepPartial<Llm>,
    options: CallSettings & { skipValidation?: boolean; validateOnly?: boolean } = {},
  ): Promise<CreateLlmResponse> {
    const request = CreateLlmRequest.fromPartial({
      llm,
      skipValidation: options.skipValidation ?? false,
      validateOnly: options.validateOnly ?? false,
    });
    return this.#unary(this.registry.createLlm.bind(this.registry), request, options);
  }

  async getLlm(llmId: string, options: CallSettings = {}): Promise<Llm> {
    const response = await this.#unary(this.registry.getLlm.bind(this.registry),
      GetLlmRequest.fromPartial({ llmId }), options);
    return required(response.llm, "GetLlmResponse.llm");
  }

  /** The caller's LLMs, newest first, fetching pages as the iteration goes on. */
  async *listLlms(pageSize = 0, options: CallSettings = {}): AsyncGenerator<Llm> {
    let pageToken = "";
    do {
      const page = await this.#unary(this.registry.listLlms.bind(this.registry),
        ListLlmsRequest.fromPartial({ pageSize, pageToken }), options);
      yield* page.llms;
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
  }

  // Sessions

  async createSession(
    llmId: string,
    options: CallSettings & { systemPrompt?: string; idleTtlSeconds?: number } = {},
  ): Promise<Session> {
    const request = CreateSessionRequest.fromPartial({ llmId, systemPrompt: options.systemPrompt ?? "" });
    if (options.idleTtlSeconds !== undefined) {
      const seconds = Math.floor(options.idleTtlSeconds);
      request.idleTtl = { seconds, nanos: Math.round((options.idleTtlSeconds - seconds) * 1e9) };
    }
    const response = await this.#unary(this.conversations.createSession.bind(this.conversations),
      request, options);
    return required(response.session, "CreateSessionResponse.session");
  }

  async getSession(sessionId: string, options: CallSettings = {}): Promise<Session> {
    const response = await this.#unary(this.conversations.getSession.bind(this.conversations),
      GetSessionRequest.fromPartial({ sessionId }), options);
    return required(response.session, "GetSessionResponse.session");
  }

  async endSession(sessionId: string, options: CallSettings = {}): Promise<void> {
    await this.#unary(this.conversations.endSession.bind(this.conversations),
      EndSessionRequest.fromPartial({ sessionId }), options);
  }

  /**
   * Replaces the session fields named in `paths` (`system_prompt`, `generation`, `idle_ttl`,
   * `messages`) with those of `session`, for example to trim its history.
   */
  async updateSession(
    sessionId: string, session: Partial<Session>, paths: string[], options: CallSettings = {},
  ): Promise<Session> {
    const response = await this.#unary(this.conversations.updateSession.bind(this.conversations),
      UpdateSessionRequest.fromPartial({ sessionId, session, updateMask: paths }), options);
    return required(response.session, "UpdateSessionResponse.session");
  }

  /**
   * Keeps only the first `heardTextChars` characters (Unicode code points) of a turn's answer:
   * what the user heard before barging in. Returns the session with its history.
   */
  async truncateTurn(
    sessionId: string, turnId: string, heardTextChars: number, options: CallSettings = {},
  ): Promise<Session> {
    const response = await this.#unary(this.conversations.truncateTurn.bind(this.conversations),
      TruncateTurnRequest.fromPartial({ sessionId, turnId, heardTextChars }), options);
    return required(response.session, "TruncateTurnResponse.session");
  }

  // Conversations

  /**
   * Runs one turn and yields its events in the documented order: `started`, `route`, then any
   * mix of `text`, `reasoning`, `toolCall`, `failover` and `route`, then `usage`, then
   * `finished`. A turn that cannot complete throws the RPC's `ServiceError` instead of
   * finishing. Leaving the loop early cancels the RPC.
   */
  async *converse(
    target: ConverseTarget,
    messages: MessageLike | MessageLike[],
    options: ConverseOptions = {},
  ): AsyncGenerator<ConverseEvent> {
    const request = ConverseRequest.fromPartial({
      ...options.request,
      target: "sessionId" in target
        ? { $case: "sessionId", value: target.sessionId }
        : { $case: "llmId", value: target.llmId },
      messages: (Array.isArray(messages) ? messages : [messages]).map(
        (m) => (typeof m === "string" ? user(m) : m)),
    });
    const call = this.conversations.converse(request, this.#metadata(), this.#callOptions(options));
    const cancel = (): void => call.cancel();
    if (options.signal?.aborted) cancel();
    options.signal?.addEventListener("abort", cancel, { once: true });
    try {
      for await (const response of call as AsyncIterable<ConverseResponse>) {
        if (response.event !== undefined) yield response.event;
      }
    } finally {
      options.signal?.removeEventListener("abort", cancel);
      call.cancel();
    }
  }

  /** Runs one turn and returns the assembled reply. */
  async reply(
    target: ConverseTarget,
    messages: MessageLike | MessageLike[],
    options: ConverseOptions = {},
  ): Promise<Reply> {
    const reply = new Reply();
    for await (const event of this.converse(target, messages, options)) reply.apply(event);
    return reply;
  }

  #metadata(): Metadata {
    const metadata = new Metadata();
    metadata.set("authorization", `Bearer ${this.#apiKey}`);
    return metadata;
  }

  #callOptions(settings: CallSettings): Partial<CallOptions> {
    return settings.timeoutMs === undefined ? {} : { deadline: Date.now() + settings.timeoutMs };
  }

  #unary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, settings: CallSettings): Promise<Res> {
    return new Promise((resolve, reject) => {
      method(request, this.#metadata(), this.#callOptions(settings), (error, response) => {
        if (error !== null) reject(error);
        else resolve(response);
      });
    });
  }
}

function required<T>(value: T | undefined, field: string): T {
  if (value === undefined) throw new Error(`the server sent no ${field}`);
  return value;
}
