/**
 * `Reply` assembles a Converse stream into the answer a caller acts on.
 *
 * It keeps the text, the reasoning history (every reasoning message so far, in order), tool
 * calls with their complete arguments, usage and the finish, and applies `failover` events:
 * FAILOVER_MODE_CONTINUE keeps everything (the next endpoint continues the same message),
 * FAILOVER_MODE_RESTART discards the messages it names, so `reply.text` is always the one
 * answer being served. Same semantics as the Python client's `switchboard_client.Reply`.
 */

import {
  type ConverseResponse,
  type Failover,
  FailoverMode,
  type RouteDecision,
  type TurnFinished,
  type Usage,
} from "./gen/switchboard/v1/conversations";

/** One event of a Converse stream: `{ $case: "text", value: TextDelta }` and so on. */
export type ConverseEvent = NonNullable<ConverseResponse["event"]>;

/** A tool call assembled from its `ToolCallDelta` pieces. */
export interface ToolCallState {
  index: number;
  id: string;
  name: string;
  /** The arguments as JSON text; complete once the turn has finished. */
  argumentsJson: string;
  thoughtSignature: string;
}

export class Reply {
  turnId = "";
  readonly routes: RouteDecision[] = [];
  readonly failovers: Failover[] = [];
  /** Tool calls by their index in the turn. */
  readonly toolCalls = new Map<number, ToolCallState>();
  usage: Usage | undefined = undefined;
  finished: TurnFinished | undefined = undefined;
  // Maps keep insertion order, so text and reasoning read in the order they began.
  readonly #text = new Map<string, string[]>();
  readonly #reasoning = new Map<string, string[]>();

  apply(event: ConverseEvent): void {
    switch (event.$case) {
      case "text":
        pieces(this.#text, event.value.messageId).push(event.value.delta);
        break;
      case "reasoning":
        pieces(this.#reasoning, event.value.reasoningId).push(event.value.delta);
        break;
      case "toolCall": {
        const delta = event.value;
        let call = this.toolCalls.get(delta.index);
        if (call === undefined) {
          call = { index: delta.index, id: "", name: "", argumentsJson: "", thoughtSignature: "" };
          this.toolCalls.set(delta.index, call);
        }
        call.id ||= delta.id;
        call.name ||= delta.name;
        call.argumentsJson += delta.argumentsDelta;
        call.thoughtSignature ||= delta.thoughtSignature;
        break;
      }
      case "failover":
        this.failovers.push(event.value);
        if (event.value.mode === FailoverMode.FAILOVER_MODE_CONTINUE) break;
        for (const messageId of event.value.discardMessageIds) {
          this.#text.delete(messageId);
          this.#reasoning.delete(messageId);
        }
        break;
      case "route":
        this.routes.push(event.value);
        break;
      case "usage":
        this.usage = event.value;
        break;
      case "finished":
        this.finished = event.value;
        break;
      case "started":
        this.turnId = event.value.turnId;
        break;
      default:
        unreachable(event);
    }
  }

  /** The answer's text, without reasoning and without text a failover discarded. */
  get text(): string {
    return [...this.#text.values()].map((parts) => parts.join("")).join("");
  }

  /** Every reasoning message of the answer, oldest first. */
  get reasoningHistory(): string[] {
    return [...this.#reasoning.values()].map((parts) => parts.join(""));
  }

  get reasoning(): string {
    return this.reasoningHistory.join("\n\n");
  }

  /** True when the turn finished and the model completed its answer (stop or tool calls). */
  get complete(): boolean {
    return this.finished?.complete ?? false;
  }

  get endpointId(): string {
    return this.finished?.endpointId ?? "";
  }
}

function pieces(byId: Map<string, string[]>, id: string): string[] {
  let parts = byId.get(id);
  if (parts === undefined) {
    parts = [];
    byId.set(id, parts);
  }
  return parts;
}

function unreachable(event: never): never {
  throw new Error(`unknown Converse event ${JSON.stringify(event)}`);
}
