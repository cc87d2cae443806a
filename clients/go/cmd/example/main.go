// Command example opens a session on a registered LLM and streams one Converse turn,
// printing the model's reasoning apart from its text.
//
//	SWITCHBOARD_API_KEY=... example -target 127.0.0.1:50051 -llm llm_... -prompt "Hi!"
//
// Events are printed as they arrive: one line per started/route/failover/usage/finished event,
// and reasoning and text deltas inline under a "[reasoning <id>]" or "[text <id>]" header.
// At the end the assembled reply (failovers applied) is printed as `reasoning: "<json>"` and
// `text: "<json>"`. A call that fails exits 1 with the gRPC status on stderr and one line per
// rich error detail (ErrorInfo reason, RetryInfo delay, BadRequest field, RequestInfo id).
//
// switchboard.Dial sends the API key as per-RPC credentials (one `authorization: Bearer`
// header per call) and Client.Converse assembles the reply while OnEvent prints each event.
// grpc.NewClient needs grpc-go 1.63 or later; the Go modules Debian 12 packages (grpc-go
// 1.33, Go 1.19), which this example builds against offline, have grpc.Dial without
// WithBlock, which likewise connects lazily on the first call.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/switchboard/switchboard/clients/go/switchboard"
	pb "github.com/switchboard/switchboard/clients/go/switchboardv1"
)

func main() {
	target := flag.String("target", envOr("SWITCHBOARD_TARGET", "127.0.0.1:50051"), "server address")
	llmID := flag.String("llm", os.Getenv("SWITCHBOARD_LLM_ID"), "the LLM id")
	prompt := flag.String("prompt", "Hi!", "the user message")
	systemPrompt := flag.String("system", "Be brief.", "the session's system prompt")
	timeout := flag.Duration("timeout", 60*time.Second, "deadline for the whole run")
	flag.Parse()
	apiKey := os.Getenv("SWITCHBOARD_API_KEY")
	if apiKey == "" || *llmID == "" {
		fmt.Fprintln(os.Stderr, "set SWITCHBOARD_API_KEY and -llm (or SWITCHBOARD_LLM_ID)")
		os.Exit(2)
	}
	if err := run(*target, apiKey, *llmID, *systemPrompt, *prompt, *timeout); err != nil {
		if s, ok := status.FromError(err); ok {
			fmt.Fprintf(os.Stderr, "error: %s: %s\n", s.Code(), s.Message())
			for _, line := range detailLines(s) {
				fmt.Fprintln(os.Stderr, "  "+line)
			}
		} else {
			fmt.Fprintf(os.Stderr, "error: %v\n", err)
		}
		os.Exit(1)
	}
}

func run(target, apiKey, llmID, systemPrompt, prompt string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Plaintext, for a local server; against TLS dial with
	// grpc.WithTransportCredentials(credentials.NewTLS(...)) and
	// grpc.WithPerRPCCredentials(switchboard.APIKey{Key: key, RequireTLS: true}), then NewClient.
	client, err := switchboard.Dial(target, apiKey, grpc.WithInsecure())
	if err != nil {
		return fmt.Errorf("connect to %s: %w", target, err)
	}
	defer client.Close()

	session, err := client.CreateSession(ctx, &pb.CreateSessionRequest{
		LlmId: llmID, SystemPrompt: systemPrompt})
	if err != nil {
		return err
	}
	fmt.Printf("[session] id=%s llm=%s\n", session.GetId(), session.GetLlmId())

	printer := eventPrinter{}
	reply, err := client.Converse(ctx, switchboard.SessionTurn(session.GetId(),
		switchboard.User(prompt)), switchboard.OnEvent(printer.print))
	if err != nil {
		return err
	}
	fmt.Printf("reasoning: %s\ntext: %s\n", quote(reply.Reasoning()), quote(reply.Text()))
	return nil
}

// eventPrinter writes events as they arrive; deltas of one message continue the same line.
type eventPrinter struct {
	current string // the "[kind id]" header of the message being streamed, if any
}

func (p *eventPrinter) print(response *pb.ConverseResponse) {
	switch e := response.GetEvent().(type) {
	case *pb.ConverseResponse_Reasoning:
		p.delta("[reasoning "+e.Reasoning.GetReasoningId()+"]", e.Reasoning.GetDelta())
	case *pb.ConverseResponse_Text:
		p.delta("[text "+e.Text.GetMessageId()+"]", e.Text.GetDelta())
	case *pb.ConverseResponse_Started:
		p.line("[started] turn=%s", e.Started.GetTurnId())
	case *pb.ConverseResponse_Route:
		r := e.Route
		p.line("[route] endpoint=%s label=%s model=%s reason=%s attempt=%d", r.GetEndpointId(),
			r.GetEndpointLabel(), r.GetModel(), r.GetReason(), r.GetAttempt())
	case *pb.ConverseResponse_ToolCall:
		c := e.ToolCall
		p.line("[tool_call %d] id=%s name=%s arguments+=%s", c.GetIndex(), c.GetId(), c.GetName(),
			quote(c.GetArgumentsDelta()))
	case *pb.ConverseResponse_Failover:
		f := e.Failover
		p.line("[failover] from=%s to=%s cause=%s discard=%v", f.GetFromEndpointId(),
			f.GetToEndpointId(), quote(f.GetCause()), f.GetDiscardMessageIds())
	case *pb.ConverseResponse_Usage:
		u := e.Usage
		p.line("[usage] input=%d output=%d reasoning=%d", u.GetInputTokens(), u.GetOutputTokens(),
			u.GetReasoningTokens())
	case *pb.ConverseResponse_Finished:
		f := e.Finished
		p.line("[finished] reason=%s complete=%t endpoint=%s model=%s attempts=%d ttft=%s",
			f.GetFinishReason(), f.GetComplete(), f.GetEndpointId(), f.GetModel(), f.GetAttempts(),
			f.GetTimeToFirstToken().AsDuration())
	}
}

func (p *eventPrinter) delta(header, text string) {
	if p.current != header {
		p.end()
		fmt.Print(header + " ")
		p.current = header
	}
	fmt.Print(text)
}

func (p *eventPrinter) line(format string, args ...interface{}) {
	p.end()
	fmt.Printf(format+"\n", args...)
}

func (p *eventPrinter) end() {
	if p.current != "" {
		fmt.Println()
		p.current = ""
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// detailLines describes the rich details of a failed call's google.rpc.Status.
func detailLines(s *status.Status) []string {
	var lines []string
	for _, detail := range s.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			lines = append(lines, fmt.Sprintf("reason=%s domain=%s", d.GetReason(), d.GetDomain()))
		case *errdetails.RetryInfo:
			lines = append(lines, fmt.Sprintf("retry_delay=%s", d.GetRetryDelay().AsDuration()))
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				lines = append(lines, fmt.Sprintf("field=%s: %s", v.GetField(), v.GetDescription()))
			}
		case *errdetails.RequestInfo:
			lines = append(lines, fmt.Sprintf("request_id=%s", d.GetRequestId()))
		case *errdetails.ResourceInfo:
			lines = append(lines, fmt.Sprintf("resource=%s %s", d.GetResourceType(), d.GetResourceName()))
		}
	}
	return lines
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
