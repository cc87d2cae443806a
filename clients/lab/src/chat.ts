// Try it: a chat on an LLM, stateless (the page keeps the history) or in a server session.
// The answer streams with reasoning apart (collapsible, one block per reasoning id), route
// decisions and failovers inline, the time to first token per turn, and a Stop button that
// cancels the turn (closing the stream cancels it upstream too).
import { h, clear, field, ms } from "./dom.js";
import { conversations, problem } from "./api.js";
import { problemView } from "./problem_view.js";
import { Role, RouteReason, type ConverseRequest } from "./gen/switchboard/v1/conversations_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { MessageSchema } from "./gen/switchboard/v1/conversations_pb.js";

type Msg = MessageInitShape<typeof MessageSchema>;

const REASON: Record<number, string> = {
  [RouteReason.FASTEST]: "fastest", [RouteReason.EXPLORATION]: "exploration",
  [RouteReason.ONLY_AVAILABLE]: "only available", [RouteReason.FAILOVER]: "failover",
  [RouteReason.HEDGE]: "hedge", [RouteReason.HALF_OPEN_TRIAL]: "half-open trial",
  [RouteReason.LARGER_CONTEXT_WINDOW]: "larger context window", [RouteReason.UNSPECIFIED]: "",
};

function text(t: string): Msg {
  return { role: Role.USER, parts: [{ kind: { case: "text", value: t } }] };
}

export class ChatView {
  readonly el: HTMLElement;
  private log = h("ol", { class: "transcript", "aria-live": "polite", "aria-label": "Conversation" });
  private input = h("textarea", { name: "message", rows: 2, placeholder: "Say something to the model" });
  private send = h("button", { type: "submit", class: "primary" }, "Send");
  private stopButton = h("button", { type: "button", class: "danger", disabled: true }, "Stop");
  private mode = h("select", { name: "mode" },
    h("option", { value: "stateless" }, "Stateless (history kept by this page)"),
    h("option", { value: "session" }, "Session (history kept by the server)"));
  private history: Msg[] = [];
  private sessionId = "";
  private abort: AbortController | null = null;

  constructor(private llmId: string) {
    this.stopButton.addEventListener("click", () => this.abort?.abort());
    this.mode.addEventListener("change", () => this.resetConversation());
    const form = h("form", { class: "composer", "aria-label": "Send a message" },
      field("Message", this.input), h("div", { class: "actions" }, this.send, this.stopButton));
    form.addEventListener("submit", (e) => { e.preventDefault(); void this.turn(); });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
    });
    this.el = h("section", { class: "chat", "aria-label": "Try it" },
      h("div", { class: "chat-bar" }, field("Conversation", this.mode),
        h("button", { type: "button", class: "small", onclick: () => this.resetConversation() }, "New conversation")),
      this.log, form);
    this.resetConversation();
  }

  private resetConversation(): void {
    this.abort?.abort();
    this.history = [];
    this.sessionId = "";
    clear(this.log);
    this.log.append(h("li", { class: "empty muted" }, "No turns yet. Send a message to try this LLM."));
  }

  private async target(): Promise<ConverseRequest["target"]> {
    if (this.mode.value !== "session") return { case: "llmId", value: this.llmId };
    if (!this.sessionId) {
      const res = await conversations.createSession({ llmId: this.llmId });
      this.sessionId = res.session?.id ?? "";
    }
    return { case: "sessionId", value: this.sessionId };
  }

  private async turn(): Promise<void> {
    const said = this.input.value.trim();
    if (!said || this.abort) return;
    this.input.value = "";
    this.log.querySelector(".empty")?.remove();
    const turn = h("li", { class: "turn" });
    const meta = h("p", { class: "turn-meta muted" });
    const events = h("ul", { class: "events", "aria-label": "Routing events" });
    const answer = h("div", { class: "answer" });
    turn.append(h("p", { class: "user" }, h("strong", {}, "You: "), said), events, answer, meta);
    this.log.append(turn);
    const texts = new Map<string, HTMLElement>();
    const names = new Map<string, string>();  // endpoint id -> label, from route events
    const name = (id: string) => names.get(id) ?? id;
    const reasonings = new Map<string, HTMLElement>();
    let finalText = "";
    let turnId = "";
    this.abort = new AbortController();
    this.send.disabled = true;
    this.stopButton.disabled = false;
    const started = performance.now();
    try {
      const stateless = this.mode.value !== "session";
      const messages = stateless ? [...this.history, text(said)] : [text(said)];
      const request = { target: await this.target(), messages };
      for await (const ev of conversations.converse(request, { signal: this.abort.signal })) {
        const e = ev.event;
        if (e.case === "started") turnId = e.value.turnId;
        if (e.case === "started" && e.value.historyMessagesOmitted > 0) {
          events.append(h("li", { class: "omitted" }, `${e.value.historyMessagesOmitted} earlier messages omitted to fit the context window`));
        } else if (e.case === "route") {
          if (e.value.endpointLabel) names.set(e.value.endpointId, e.value.endpointLabel);
          events.append(h("li", { class: "route" }, `Routed to ${e.value.endpointLabel || e.value.endpointId} (${REASON[e.value.reason] ?? ""}, attempt ${e.value.attempt}` +
            (e.value.expectedTtftMs ? `, expected ${ms(e.value.expectedTtftMs)}` : "") + ")"));
        } else if (e.case === "failover") {
          for (const id of e.value.discardMessageIds) {
            texts.get(id)?.classList.add("discarded");
            texts.get(id)?.setAttribute("aria-label", "discarded text");
          }
          events.append(h("li", { class: "failover", role: "status" }, `Failover ${name(e.value.fromEndpointId)} → ${name(e.value.toEndpointId)}: ${e.value.cause}` +
            (e.value.discardMessageIds.length ? " (the text so far is discarded)" : "")));
        } else if (e.case === "reasoning") {
          let body = reasonings.get(e.value.reasoningId);
          if (!body) {
            body = h("div", { class: "reasoning-text" });
            reasonings.set(e.value.reasoningId, body);
            answer.append(h("details", { class: "reasoning", "data-reasoning-id": e.value.reasoningId },
              h("summary", {}, `Reasoning (${e.value.reasoningId})`), body));
          }
          body.append(e.value.delta);
        } else if (e.case === "text") {
          let body = texts.get(e.value.messageId);
          if (!body) {
            body = h("p", { class: "assistant", "data-message-id": e.value.messageId });
            texts.set(e.value.messageId, body);
            answer.append(body);
          }
          body.append(e.value.delta);
        } else if (e.case === "finished") {
          const f = e.value;
          const ttft = f.timeToFirstToken ? Number(f.timeToFirstToken.seconds) * 1000 + f.timeToFirstToken.nanos / 1e6 : 0;
          meta.textContent = `TTFT ${ms(ttft)} · ${f.attempts} attempt${f.attempts === 1 ? "" : "s"} · served by ${name(f.endpointId)} · ${Math.round(performance.now() - started)} ms total` +
            (f.complete ? "" : " · incomplete");
          meta.setAttribute("data-ttft-ms", String(Math.round(ttft)));
          finalText = [...texts.values()].filter((t) => !t.classList.contains("discarded")).map((t) => t.textContent).join("");
        }
      }
      if (stateless) this.history.push(text(said), { role: Role.ASSISTANT, parts: [{ kind: { case: "text", value: finalText } }] });
    } catch (err) {
      const p = problem(err);
      if (p.aborted) {
        meta.textContent = "Stopped: the turn was cancelled.";
        turn.classList.add("stopped");
        const heard = [...texts.values()].filter((t) => !t.classList.contains("discarded"))
          .map((t) => t.textContent ?? "").join("").length;
        if (this.sessionId && turnId) await this.truncate(turn, turnId, heard);
      } else {
        turn.append(problemView(p, "The turn failed"));
      }
    } finally {
      this.abort = null;
      this.send.disabled = false;
      this.stopButton.disabled = true;
      this.input.focus();
    }
  }

  // Barge-in in a session: the server keeps only what was shown of the stopped answer
  // (TruncateTurn), so the next turn's history matches what the user saw.
  private async truncate(turn: HTMLElement, turnId: string, heard: number): Promise<void> {
    try {
      const res = await conversations.truncateTurn({ sessionId: this.sessionId, turnId, heardTextChars: heard });
      const messages = res.session?.messages ?? [];
      const last = [...messages].reverse().find((m) => m.turnId === turnId && m.role === Role.ASSISTANT);
      const kept = last?.parts.map((part) => (part.kind.case === "text" ? part.kind.value : "")).join("") ?? "";
      turn.append(h("p", { class: "truncated muted" },
        `Session history: ${messages.length} messages; the stopped answer is kept as the ${kept.length} characters shown` +
        (last?.interrupted ? " (marked interrupted)." : ".")));
    } catch (err) {
      turn.append(problemView(problem(err), "The session history could not be truncated"));
    }
  }

  dispose(): void {
    this.abort?.abort();
  }
}
